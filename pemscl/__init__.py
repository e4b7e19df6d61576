"""pemscl: a research workbench for document-level relation extraction.

Re-implements PEMSCL (Guo, Kok, Bing; EACL 2023): the pairwise moving-threshold
loss with entropy minimisation, supervised contrastive learning for multi-label
long-tailed relations, and negative label sampling, on the ATLOP encoder.

Modules, each holding one thing (docs/layout.md lists them all):
  data        DocRED-format loading, validation, data directory, regimes
  features    ATLOP preprocessing (entity markers, pairs, labels) and its cache
  evaluate    the official DocRED scorer (F1, Ign F1) and breakdowns
  losses      PMT, EM, SCL, negative sampling, and the ATL / BCE / NCRL / AFL / SSR-PU baselines
  lossspec    LossSpec and the loss registry (no torch)
  model       the ATLOP encoder and group-bilinear head
  config      TrainConfig, presets and the run key
  train       the training loop, resumable state, load / predict
  runs        run folders and the record results/runs.jsonl
  experiments the catalogue of profiles and configs; runner trains what is missing
  export      a run as a self-contained folder (safetensors, tokenizer, model card)
"""

__version__ = "0.1.0"
