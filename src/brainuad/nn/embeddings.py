"""Timestep and context embeddings that drive the FiLM layers of the denoising UNet.

Paper §3.2 (cDDPM): the time step t is encoded with a sinusoidal position embedding and
projected by a multi-layer perceptron ("MLP I") to c_t; the context vector c = F_enc(x0)
is concatenated with it, c' = concat(c, c_t), and every residual block maps c' to its
own (gamma, beta) ("MLP II", see :class:`brainuad.nn.blocks.ResBlock`).

The conditioning variants are small strategy modules sharing one interface,
``forward(t, context) -> emb: (N, out_dim)``:

- :class:`TimeConditioning`: unconditioned DDPM, emb = MLP I(sinusoid(t)).
- :class:`TimeContextConditioning`: cDDPM, emb = concat(P(c), MLP I(sinusoid(t))), where the
  context projection P is the identity (paper) or its own :class:`MLP` (authors' code).
"""

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from brainuad.checks import check_int

__all__ = [
    "MLP",
    "Conditioning",
    "TimeConditioning",
    "TimeContextConditioning",
    "TimeEmbedding",
    "timestep_embedding",
]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal position embedding of diffusion time steps (Vaswani et al.; ADM layout).

    With ``half = dim // 2`` and frequencies ``w_k = max_period ** (-k / half)`` for
    ``k = 0 .. half - 1``, the embedding is ``[cos(t * w_0) .. cos(t * w_{half-1}),
    sin(t * w_0) .. sin(t * w_{half-1})]``.

    Args:
        t: (N,) time steps, integer or float (in step units, 0 .. T).
        dim: embedding width; a positive even integer.
        max_period: longest period of the sinusoids, in step units; positive.

    Returns:
        (N, dim) float32 tensor on the device of ``t``.
    """
    if t.ndim != 1:
        raise ValueError(f"t must have shape (N,), got shape {tuple(t.shape)!r}")
    check_int("dim", dim)
    if dim % 2 != 0:
        raise ValueError(f"dim must be even, got {dim!r}")
    if not max_period > 0:
        raise ValueError(f"max_period must be positive, got {max_period!r}")
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=t.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponents)
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class MLP(nn.Module):
    """Two-layer perceptron ``Linear(in_dim, out_dim) -> SiLU -> Linear(out_dim, out_dim)``.

    Used as MLP I (after the sinusoidal embedding) and as the authors' context MLP.

    Args:
        in_dim: input width.
        out_dim: hidden and output width.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        check_int("in_dim", in_dim)
        check_int("out_dim", out_dim)
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_dim) -> (N, out_dim)."""
        return self.fc2(self.act(self.fc1(x)))


class TimeEmbedding(nn.Module):
    """Time step -> sinusoidal embedding of width ``sinusoid_dim`` -> MLP I -> c_t.

    Args:
        sinusoid_dim: width of the sinusoidal embedding (ADM: the UNet's base channels); even.
        out_dim: width of c_t (hidden width of MLP I as well).
    """

    def __init__(self, sinusoid_dim: int, out_dim: int) -> None:
        super().__init__()
        check_int("sinusoid_dim", sinusoid_dim)
        if sinusoid_dim % 2 != 0:
            raise ValueError(f"sinusoid_dim must be even, got {sinusoid_dim!r}")
        self.sinusoid_dim = sinusoid_dim
        self.out_dim = out_dim
        self.mlp = MLP(sinusoid_dim, out_dim)

    def forward(self, t: Tensor) -> Tensor:
        """t: (N,) time steps (int or float) -> c_t: (N, out_dim)."""
        return self.mlp(timestep_embedding(t, self.sinusoid_dim))


class Conditioning(nn.Module, ABC):
    """Strategy: builds the embedding vector every residual block receives.

    Attributes:
        out_dim: width E of the embedding, the input width of every block's MLP II.
        context_dim: width d of the context vector it expects, or None when it takes none.
    """

    out_dim: int
    context_dim: int | None

    @abstractmethod
    def forward(self, t: Tensor, context: Tensor | None) -> Tensor:
        """t: (N,), context: (N, context_dim) or None -> emb: (N, out_dim)."""


class TimeConditioning(Conditioning):
    """Unconditioned DDPM: emb = MLP I(sinusoid(t)); no context allowed.

    Args:
        time_embedding: the time step embedding (MLP I).
    """

    def __init__(self, time_embedding: TimeEmbedding) -> None:
        super().__init__()
        self.time_embedding = time_embedding
        self.out_dim = time_embedding.out_dim
        self.context_dim = None

    def forward(self, t: Tensor, context: Tensor | None) -> Tensor:
        """t: (N,) time steps; context must be None -> emb: (N, out_dim)."""
        if context is not None:
            raise ValueError(
                "context must be None for an unconditioned network, got a tensor of shape "
                f"{tuple(context.shape)!r}"
            )
        return self.time_embedding(t)


class TimeContextConditioning(Conditioning):
    """cDDPM (paper §3.2): emb = c' = concat(P(c), c_t).

    P is the identity in the paper (c' in R^(2d) when c_t in R^d) and a :class:`MLP` in the
    authors' code.

    Args:
        time_embedding: the time step embedding (MLP I) giving c_t.
        context_dim: width d of the context vector c.
        context_mlp: the context projection P, or None for the identity. Its ``in_dim`` must
            equal ``context_dim``.
    """

    def __init__(
        self, time_embedding: TimeEmbedding, context_dim: int, context_mlp: MLP | None
    ) -> None:
        super().__init__()
        check_int("context_dim", context_dim)
        if context_mlp is not None and context_mlp.in_dim != context_dim:
            raise ValueError(
                f"context_mlp.in_dim must equal context_dim={context_dim!r}, "
                f"got {context_mlp.in_dim!r}"
            )
        self.time_embedding = time_embedding
        self.context_mlp = context_mlp
        self.context_dim = context_dim
        projected = context_dim if context_mlp is None else context_mlp.out_dim
        self.out_dim = projected + time_embedding.out_dim

    def forward(self, t: Tensor, context: Tensor | None) -> Tensor:
        """t: (N,) time steps, context: (N, context_dim) -> emb: (N, out_dim)."""
        if context is None:
            raise ValueError("context is required by a conditioned network, got None")
        if context.ndim != 2 or context.shape[1] != self.context_dim:
            raise ValueError(
                f"context must have shape (N, {self.context_dim}), "
                f"got {tuple(context.shape)!r}"
            )
        if context.shape[0] != t.shape[0]:
            raise ValueError(
                f"context batch size {context.shape[0]!r} does not match t batch size "
                f"{t.shape[0]!r}"
            )
        projected = context if self.context_mlp is None else self.context_mlp(context)
        return torch.cat([projected, self.time_embedding(t)], dim=1)
