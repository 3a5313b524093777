"""One intra-op thread: this suite runs on small CPU tensors on a shared machine."""

import torch

torch.set_num_threads(1)
