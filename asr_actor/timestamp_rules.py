"""Whisper's timestamp rules applied on the device, for the whole batch at once.

At every decoding step transformers' ``WhisperTimeStampLogitsProcessor`` copies the
batch's tokens to the host (``input_ids.tolist()``: the GPU waits for the host once a
step) and then masks each row in a Python loop (two small kernel launches per row per
step: at batch 64 about 128 launches, more than the decoder step itself when it runs
as one CUDA graph). The rules are those of OpenAI's ``ApplyTimestampRules``:
timestamps come in pairs except right before the end token, never go back, the first
token is a timestamp no later than ``max_initial_timestamp_index``, and a timestamp is
forced when the timestamps together are likelier than any text token.
:func:`install` gives a model's timestamp processors the same rules as tensor
operations over the batch: the same scores, no host copy, a fixed number of launches.
"""

from __future__ import annotations

from typing import Any

NEG_INF = -float("inf")


def _processor_class():
    import torch
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    class BatchTimestampRules(WhisperTimeStampLogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
            out = scores.clone()
            out[:, self.no_timestamps_token_id] = NEG_INF  # timestamps are asked for
            first_ts = self.timestamp_begin
            generated = input_ids[:, self.begin_index :]
            rows, n = generated.shape
            floor = torch.full((rows,), first_ts, dtype=torch.long, device=out.device)
            if n >= 1:
                is_ts = generated >= first_ts
                last = is_ts[:, -1]
                before = is_ts[:, -2] if n >= 2 else torch.ones_like(last)
                closing = last & ~before  # a lone timestamp: the pair must close, or the text end
                out[:, first_ts:].masked_fill_((last & before)[:, None], NEG_INF)  # a pair just closed: text
                out[:, : self.eos_token_id].masked_fill_(closing[:, None], NEG_INF)
                position = torch.arange(n, device=out.device).expand(rows, n)
                latest = torch.where(is_ts, position, -1).max(dim=1).values
                value = generated.gather(1, latest.clamp(min=0)[:, None]).squeeze(1)
                # timestamps never go back; a closed pair's end may not be repeated
                floor = torch.where(latest >= 0, value + (~closing).long(), floor)
            vocab = torch.arange(out.shape[-1], device=out.device)
            out.masked_fill_((vocab >= first_ts) & (vocab < floor[:, None]), NEG_INF)
            if n == 0:  # the first token: a timestamp, and not too late
                out[:, :first_ts] = NEG_INF
                if self.max_initial_timestamp_index is not None:
                    out[:, first_ts + self.max_initial_timestamp_index + 1 :] = NEG_INF
            if self._detect_timestamp_from_logprob:
                logprobs = torch.nn.functional.log_softmax(out.float(), dim=-1)
                timestamps = logprobs[:, first_ts:].logsumexp(dim=-1)
                best_text = logprobs[:, :first_ts].max(dim=-1).values
                out[:, :first_ts].masked_fill_((timestamps > best_text)[:, None], NEG_INF)
            return out

    return BatchTimestampRules


def install(model: Any) -> None:
    """Make ``model.generate`` apply the timestamp rules with :class:`BatchTimestampRules`."""
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    batch_rules = _processor_class()
    retrieve = model._retrieve_logit_processors

    def retrieve_on_device(*args: Any, **kwargs: Any):
        processors = retrieve(*args, **kwargs)
        for processor in processors or ():
            if type(processor) is WhisperTimeStampLogitsProcessor:
                processor.__class__ = batch_rules
        return processors

    model._retrieve_logit_processors = retrieve_on_device
