#!/usr/bin/python3
"""Writes the PyTorch fixtures of the checkpoint converter (test/unit/checkpoint/pytorchFixture.test.ts):

  test/fixtures/torch-transformer.safetensors  state_dict of a small decoder-only transformer
  test/fixtures/torch-mlp.safetensors          state_dict of an MLP 784 -> 8 -> 10
  test/fixtures/torch-logits.json              each model's spec (ours), fixed inputs and PyTorch's logits on them

The modules mirror src/models/transformer.ts and src/models/mlp.ts in PyTorch (module names as in our layouts,
PyTorch's own layouts: Linear weight [out, in], LayerNorm `weight`): pre-LN blocks, LayerNorm eps 1e-5 with the
biased variance, causal multi-head attention scaled by 1/sqrt(d_head), exact (erf) GELU, learned positions,
logits = LN(h) . embed.weight^T (tied, no head of its own).

Run with the Debian torch: /usr/bin/python3 scripts/make-torch-fixture.py
The safetensors files are written by hand (8-byte little-endian header length, JSON header padded with spaces to
an 8-byte boundary, raw little-endian float32 data), so the `safetensors` package is not needed.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')

TRANSFORMER = {
    'kind': 'transformer',
    'vocab': ' .abcdefgh',
    'dModel': 16,
    'layers': 2,
    'heads': 2,
    'ffn': 32,
    'context': 8,
}
MLP = {'kind': 'mlp', 'hidden': [8]}


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        n, t, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.reshape(n, t, self.heads, dh).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)
        future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float('-inf'))
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, d, ffn):
        super().__init__()
        self.fc = nn.Linear(d, ffn)
        self.proj = nn.Linear(ffn, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))  # exact GELU (approximate='none')


class Block(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d, ffn)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, spec):
        super().__init__()
        d = spec['dModel']
        self.embed = nn.Embedding(len(spec['vocab']), d)
        self.pos = nn.Embedding(spec['context'], d)
        self.blocks = nn.ModuleList(Block(d, spec['heads'], spec['ffn']) for _ in range(spec['layers']))
        self.lnf = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids):
        t = ids.shape[1]
        h = self.embed(ids) + self.pos.weight[:t]
        for block in self.blocks:
            h = block(h)
        return self.lnf(h) @ self.embed.weight.t()


class MlpModel(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.reshape(x.shape[0], 784))))


def write_safetensors(path, state):
    header, chunks, offset = {}, [], 0
    for name, tensor in state.items():
        data = tensor.detach().to(torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def main():
    torch.manual_seed(20261201)
    transformer = Transformer(TRANSFORMER).eval()
    # Every tensor random (LayerNorm gains and biases too), so any mix-up in the conversion shows in the logits.
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if name.endswith('ln1.weight') or name.endswith('ln2.weight') or name == 'lnf.weight':
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn_like(p))
            elif name in ('embed.weight', 'pos.weight'):
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    v, c = len(TRANSFORMER['vocab']), TRANSFORMER['context']
    ids = torch.randint(0, v, (3, c))
    short = ids[:2, :5]
    mlp = MlpModel(MLP['hidden'][0]).eval()
    images = torch.rand(3, 784)
    images = torch.round(images * 1000) / 1000  # exact in JSON

    with torch.no_grad():
        t_logits = transformer(ids).reshape(-1, v)
        s_logits = transformer(short).reshape(-1, v)
        m_logits = mlp(images)

    write_safetensors(os.path.join(OUT, 'torch-transformer.safetensors'), transformer.state_dict())
    write_safetensors(os.path.join(OUT, 'torch-mlp.safetensors'), mlp.state_dict())
    fixture = {
        'source': f'scripts/make-torch-fixture.py with torch {torch.__version__}, seed 20261201, float32',
        'transformer': {
            'spec': TRANSFORMER,
            'cases': [
                {'ids': ids.tolist(), 'logits': t_logits.flatten().tolist()},
                {'ids': short.tolist(), 'logits': s_logits.flatten().tolist()},
            ],
        },
        'mlp': {
            'spec': MLP,
            'cases': [{'images': images.flatten().tolist(), 'logits': m_logits.flatten().tolist()}],
        },
    }
    with open(os.path.join(OUT, 'torch-logits.json'), 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
        f.write('\n')
    for name in ('torch-transformer.safetensors', 'torch-mlp.safetensors', 'torch-logits.json'):
        print(f'{name}: {os.path.getsize(os.path.join(OUT, name))} bytes')


if __name__ == '__main__':
    main()
