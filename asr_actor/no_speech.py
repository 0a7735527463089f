"""The no-speech probability from the encoder pass that decoding already made.

Whisper's no-speech probability is the ``<|nospeech|>`` probability at the
``<|startoftranscript|>`` position. When the decoder prompt is longer than that one
token (a multilingual model's language and task tokens, or a prompt), transformers'
``WhisperNoSpeechDetection`` gets it by running the whole model again, encoder
included, on the original inputs, at the start of every decoding pass: on large-v3,
whose encoder is most of a window's cost, that nearly doubles the GPU time per pass.
And on a fallback pass (a subset of the batch, decoded hotter) it runs on the whole
original batch, so row ``i`` of the subset is given row ``i`` of the batch's probability.

:func:`install` makes a model's detectors take the encoder output of the pass they
belong to (kept by a forward hook on the encoder) and run only the decoder over the
prompt of the rows being decoded: the same probabilities on a first pass, each row's
own on a fallback pass, and no second encoder pass.
"""

from __future__ import annotations

from typing import Any


class _EncoderOutput:
    """The encoder's output of the pass under way (set by a forward hook, taken once)."""

    def __init__(self) -> None:
        self.hidden: Any = None
        self.wanted = False  # only while a detector will take it (a decoder prompt longer than one token)

    def keep(self, _module: Any, _args: Any, output: Any) -> None:
        if self.wanted:
            self.hidden = output[0]

    def take(self) -> Any:
        hidden, self.hidden = self.hidden, None  # not held past its pass (batch x 1500 x width)
        return hidden


def _detector_class():
    import torch
    from transformers.generation.logits_process import WhisperNoSpeechDetection

    class SharedEncoderNoSpeech(WhisperNoSpeechDetection):
        encoder_output: _EncoderOutput

        def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
            if input_ids.shape[1] != self.begin_index:
                return scores
            if self.start_of_trans_offset > 1:
                hidden = self.encoder_output.take()
                if input_ids.shape[0] != hidden.shape[0]:  # beams: each row's encoder output repeated
                    hidden = hidden.repeat_interleave(input_ids.shape[0] // hidden.shape[0], dim=0)
                with torch.no_grad():
                    logits = self.model(encoder_outputs=(hidden,), decoder_input_ids=input_ids).logits
                probs = logits[:, self.begin_index - self.start_of_trans_offset].float().softmax(dim=-1)
            else:  # the first generated token's own scores
                probs = scores.float().exp() if self.is_scores_logprobs else scores.float().softmax(dim=-1)
            self._no_speech_prob = probs[:, self.no_speech_token]
            return scores

    return SharedEncoderNoSpeech


def install(model: Any) -> None:
    """Make ``model.generate``'s no-speech detection reuse each pass's encoder output."""
    from transformers.generation.logits_process import WhisperNoSpeechDetection

    encoder_output = _EncoderOutput()
    model.get_encoder().register_forward_hook(encoder_output.keep)
    shared = _detector_class()

    def setup(logits_processor, segment_input, decoder_input_ids, kwargs) -> None:
        # transformers calls this once per window batch, before its passes; it would hand the
        # detector the batch's input features for a full second forward.
        for processor in logits_processor or ():
            if isinstance(processor, WhisperNoSpeechDetection):
                processor.__class__ = shared
                processor.encoder_output = encoder_output
                encoder_output.wanted = processor.start_of_trans_offset > 1

    model._setup_no_speech_detection = setup
