"""PyTorch eager BertForMaskedLM's train step, timed like side_by_side.Runner."""
import os
import time

import numpy as np
import torch
import transformers

from side_by_side import Timed


class TorchRunner(Timed):
  """transformers' BertForMaskedLM + torch.optim.AdamW + global-norm clipping, eager, fp32;
  with `autocast`, the forward pass under torch.autocast('cpu', bfloat16), PyTorch's own
  mixed precision (fp32 weights and optimizer, bf16 matmuls)."""

  def __init__(self, shape: dict, vocab: int, optim, hf_batch: dict, autocast: bool = False):
    self.name = 'PyTorch autocast bf16' if autocast else 'PyTorch eager'
    self.autocast = autocast
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=shape['hidden'], num_hidden_layers=shape['layers'],
        num_attention_heads=shape['heads'], intermediate_size=shape['ff'], hidden_act='gelu',
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
        type_vocab_size=2, layer_norm_eps=1e-12)
    t0 = time.perf_counter()
    self.model = transformers.BertForMaskedLM(config).train()
    params = list(self.model.parameters())
    # Weight decay on matrices only, as plm.train.make_optimizer; a constant lr (speed only).
    self.opt = torch.optim.AdamW(
        [{'params': [p for p in params if p.ndim > 1], 'weight_decay': optim.weight_decay},
         {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}],
        lr=optim.lr, betas=(optim.b1, optim.b2), eps=optim.eps)
    self.grad_clip = optim.grad_clip
    self.batch = {k: torch.from_numpy(np.asarray(v).astype(np.int64)) for k, v in hf_batch.items()}
    self.compile_s = time.perf_counter() - t0  # model construction; eager has no compile
    self.params = sum(p.numel() for p in self.model.parameters())  # tied decoder once
    self.block_ms, self.losses = [], []

  def run(self, n: int) -> None:
    for _ in range(n):
      with torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.autocast):
        out = self.model(**self.batch)  # labels -100 off the masked positions: HF's MLM loss
      out.loss.backward()
      torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
      self.opt.step()
      self.opt.zero_grad(set_to_none=True)
      self.losses.append(out.loss.detach())

