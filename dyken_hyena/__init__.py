"""DyKen-Hyena's training and publishing internals.

The model itself lives in the top-level remote-code files (`configuration_dyken.py`, `modeling_dyken.py`,
`processing_dyken.py`), which a checkpoint carries; the data in `datasets_scripts/`. This package holds what sits
above them: the training job's parts (arguments, data loading, checkpoints, evaluation, reports) and publishing to
the Hugging Face Hub. `train_accelerate.py` puts them together.
"""
