"""The behaviour-aware VQ-VAE that turns a buyer into one of K discrete buyer types.

One buyer = its event-token sequence (``TOKEN_CHANNELS``, padded with 0) plus its
standardized aggregate features. The encoder sums one embedding per token channel and a
position embedding, runs a 1-D convolution over the real events only (masked by
``seq_len``, then mean- and max-pooled; a GRU is the alternative ``encoder="gru"``), joins
that with an MLP of the aggregates and projects to a small latent. The latent is
quantized by ``vector_quantize_pytorch.VectorQuantize`` (k-means init, EMA codebook,
dead-code replacement); the code index *is* the buyer type.

Behaviour-aware, twice: the first latent dims are *funnel dims*, the encoder's own
prediction of the outcomes in ``funnel_outcomes`` (by default purchase, scale 4, and cart,
scale 1), so that buyers who bought and buyers who did not lie far apart and the codes split
on it; and heads predict every funnel outcome (``has_cart``, ``has_purchase``, ``bounced``)
from the quantized code. Decoders reconstruct the aggregates (MSE) and the event sequence
(one softmax per channel and position, non-autoregressive, from the code alone).

Example:
    >>> import torch
    >>> model = PersonaVQVAE(PersonaVQVAEConfig(k=4, max_len=8))
    >>> tok = torch.randint(1, 3, (5, 5, 8)); n = torch.full((5,), 8); x = torch.randn(5, 16)
    >>> model.encode(tok, n, x).shape
    torch.Size([5, 16])
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from simpersona_env.buyers.spec import FEATURE_NAMES, OUTCOME_COLUMNS, TOKEN_CHANNELS
from simpersona_env.config import field

__all__ = ["PersonaVQVAEConfig", "VQVAEOutput", "PersonaVQVAE"]


@dataclasses.dataclass
class PersonaVQVAEConfig:
    """Architecture and loss weights of the buyer-type VQ-VAE."""

    k: int = field(16, help="number of buyer types (codebook size)")
    encoder: str = field("conv", help="sequence encoder: 'conv' (1-D convolution + masked mean/max "
                                      "pooling; fast) or 'gru' (recurrent; ~20x slower on CPU)")
    latent_dim: int = field(16, help="size of the latent vector that is quantized")
    embed_dim: int = field(16, help="size of each token-channel embedding (summed)")
    hidden_dim: int = field(64, help="GRU hidden size and MLP width")
    max_len: int = field(32, help="longest event sequence read (the last events are kept; the "
                                  "aggregates still cover the whole history)")
    n_features: int = field(len(FEATURE_NAMES), help="number of aggregate features")
    channel_vocab: dict[str, int] = field(dict(TOKEN_CHANNELS),
                                          help="token channel -> vocabulary size incl. padding 0")
    n_outcomes: int = field(len(OUTCOME_COLUMNS), help="funnel outcomes the heads predict")
    ema_decay: float = field(0.99, help="EMA decay of the codebook updates")
    commitment_weight: float = field(1.0, help="weight of the VQ commitment loss")
    dead_code_threshold: float = field(
        1.0, help="a code whose EMA usage falls below this many buyers per batch is re-seeded "
                  "from the batch (dead-code replacement)")
    kmeans_iters: int = field(25, help="k-means iterations of the codebook initialisation")
    kmeans_restarts: int = field(10, help="k-means runs of the codebook initialisation; the one "
                                          "with the lowest inertia seeds the codebook")
    diversity_weight: float = field(
        0.0, help="weight of vector-quantize-pytorch's codebook diversity loss (spreads usage)")
    w_features: float = field(3.0, help="weight of the aggregate-feature reconstruction loss")
    w_sequence: float = field(0.5, help="weight of the event-sequence reconstruction loss")
    w_outcomes: float = field(0.5, help="weight of the behaviour-aware funnel-outcome heads "
                                        "(on the quantized code)")
    funnel_outcomes: dict[str, float] = field(
        {"has_purchase": 4.0, "has_cart": 1.0},
        help="funnel-aware latent: one latent dim per outcome listed (of has_cart, "
             "has_purchase, bounced) holds the encoder's own prediction of it, mapped to "
             "(-scale, +scale) with the scale given here (the other dims have unit RMS), so "
             "that codes separate on it (a larger scale weighs more); {} = none")
    w_funnel: float = field(4.0, help="weight of the BCE that supervises the funnel dims")


class VQVAEOutput(NamedTuple):
    """Everything one forward pass gives; each loss term is a scalar tensor."""

    codes: Tensor  # (B,) int64 buyer type, or -1 when the pass skipped quantization
    latent: Tensor  # (B, D) encoder output before quantization
    loss: Tensor  # weighted sum of the terms below
    features: Tensor  # MSE of the standardized aggregate features
    sequence: Tensor  # mean cross-entropy over real positions and channels
    outcomes: Tensor  # BCE of the funnel-outcome heads (on the quantized code)
    funnel: Tensor  # BCE of the funnel dims of the latent; 0 without them
    commitment: Tensor  # VQ commitment (+ diversity) loss; 0 without quantization


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class PersonaVQVAE(nn.Module):
    """Encoder -> VectorQuantize (K codes) -> feature, sequence and funnel-outcome decoders.

    Raises:
        UnknownNameError: an unknown ``cfg.encoder``.
    """

    def __init__(self, cfg: PersonaVQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.channels = list(cfg.channel_vocab)
        self.vocab = [int(cfg.channel_vocab[c]) for c in self.channels]
        # One table for all channels, summed per position by an EmbeddingBag (one op instead
        # of one lookup and add per channel); row 0 is the shared padding row.
        offsets = torch.tensor([0, *self.vocab[:-1]]).cumsum(0)  # (C,) first row of each channel
        self.register_buffer("offsets", offsets.view(1, -1, 1), persistent=False)  # (1, C, 1)
        self.embed = nn.EmbeddingBag(1 + sum(self.vocab), cfg.embed_dim, mode="sum",
                                     padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.embed_dim)
        if cfg.encoder == "gru":
            self.gru = nn.GRU(cfg.embed_dim, cfg.hidden_dim, batch_first=True)
            seq_out = cfg.hidden_dim
        elif cfg.encoder == "conv":
            # Why a convolution and not a GRU by default: assignment must reach >= 50k buyers/s
            # on 2 CPU cores; a GRU steps through time and measured ~20x slower.
            self.conv = nn.Conv1d(cfg.embed_dim, cfg.hidden_dim, kernel_size=3, padding=1)
            seq_out = 2 * cfg.hidden_dim  # masked mean and max pooling
        else:
            from simpersona_env.errors import UnknownNameError

            raise UnknownNameError("encoder", cfg.encoder, ("conv", "gru"))
        self.feat_in = _mlp(cfg.n_features, cfg.hidden_dim, cfg.hidden_dim)
        for name, scale in cfg.funnel_outcomes.items():
            if name not in OUTCOME_COLUMNS:
                from simpersona_env.errors import UnknownNameError

                raise UnknownNameError("funnel outcome", name, OUTCOME_COLUMNS)
            if not float(scale) > 0:
                from simpersona_env.errors import ConfigError

                raise ConfigError(f"funnel_outcomes.{name}={scale}: a funnel dim's scale must "
                                  "be > 0 (drop the outcome to give it no dim)")
        # Column of each funnel dim in the outcome labels (OUTCOME_COLUMNS order), its scale.
        self.funnel_index = [OUTCOME_COLUMNS.index(n) for n in cfg.funnel_outcomes]
        self.register_buffer("funnel_scale", torch.tensor(
            [float(v) for v in cfg.funnel_outcomes.values()]).view(1, -1), persistent=False)
        self.n_funnel = len(self.funnel_index)
        if self.n_funnel and cfg.latent_dim <= self.n_funnel:
            from simpersona_env.errors import ConfigError

            raise ConfigError(f"latent_dim={cfg.latent_dim} leaves no room beside the "
                              f"{self.n_funnel} funnel dims; use latent_dim > {self.n_funnel} "
                              "or fewer funnel_outcomes")
        joined = seq_out + cfg.hidden_dim
        rest = cfg.latent_dim - self.n_funnel
        self.to_latent = nn.Sequential(nn.GELU(), nn.Linear(joined, rest), nn.LayerNorm(rest))
        if self.n_funnel:
            self.to_funnel = nn.Sequential(nn.GELU(), nn.Linear(joined, self.n_funnel))
        self.vq = VectorQuantize(
            dim=cfg.latent_dim, codebook_size=cfg.k, decay=cfg.ema_decay,
            # With funnel dims the commitment is computed here, on the other dims only.
            commitment_weight=0.0 if self.n_funnel else cfg.commitment_weight, kmeans_init=True,
            kmeans_iters=cfg.kmeans_iters, threshold_ema_dead_code=cfg.dead_code_threshold,
            codebook_diversity_loss_weight=cfg.diversity_weight,
            # Plain straight-through with funnel dims: the rotation trick mixes the gradient
            # of every dim into every other, so the decoders would move the funnel dims.
            rotation_trick=not self.n_funnel,
        )
        self.feat_out = _mlp(cfg.latent_dim, cfg.hidden_dim, cfg.n_features)
        self.seq_pos = nn.Embedding(cfg.max_len, cfg.hidden_dim)
        self.seq_in = nn.Linear(cfg.latent_dim, cfg.hidden_dim)
        self.seq_out = _mlp(cfg.hidden_dim, cfg.hidden_dim, sum(self.vocab))
        self.outcome_head = _mlp(cfg.latent_dim, cfg.hidden_dim, cfg.n_outcomes)

    # -- encoder -----------------------------------------------------------------------------

    def encode(self, tokens: Tensor, seq_len: Tensor, features: Tensor) -> Tensor:
        """Latent of each buyer.

        Args:
            tokens: (B, C, L) integer tokens, 0 = padding; L <= max_len.
            seq_len: (B,) real events per buyer, 1..L.
            features: (B, F) standardized aggregates.

        Returns:
            (B, D) latent.
        """
        return self._encode(tokens, seq_len, features)[0]

    def _encode(self, tokens: Tensor, seq_len: Tensor, features: Tensor
                ) -> tuple[Tensor, Tensor | None]:
        """Latent (B, D) and the funnel-dim logits (B, n_outcomes), None without funnel dims."""
        tokens = tokens.long()
        b, c, length = tokens.shape
        joint = torch.where(tokens > 0, tokens + self.offsets, 0)  # (B, C, L), 0 = padding
        bags = joint.transpose(1, 2).reshape(b * length, c)  # (B*L, C): one bag per position
        x = self.embed(bags).view(b, length, -1)  # (B*L, E) -> (B, L, E)
        x = x + self.pos.weight[:length].unsqueeze(0)  # (1, L, E) broadcast over B
        if self.cfg.encoder == "gru":
            packed = nn.utils.rnn.pack_padded_sequence(x, seq_len.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, h = self.gru(packed)  # h: (1, B, H), the state after each buyer's last event
            h = h.squeeze(0)  # (B, H)
        else:
            real = (tokens[:, 0] > 0).unsqueeze(-1)  # (B, L, 1) real events, padding is 0
            x = x * real  # padding contributes nothing to the convolution
            y = F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, E, L) -> (B, L, H)
            mean = (y * real).sum(1) / seq_len.clamp(min=1).unsqueeze(-1).to(y.dtype)  # (B, H)
            peak = y.masked_fill(~real, float("-inf")).amax(1)  # (B, H)
            h = torch.cat([mean, peak], dim=-1)  # (B, 2H)
        h = torch.cat([h, self.feat_in(features)], dim=-1)  # (B, 2H or H + H)
        rest = self.to_latent(h)  # (B, D - n_funnel), unit RMS per buyer (LayerNorm)
        if not self.n_funnel:
            return rest, None
        # Funnel-aware latent: the first dims are the encoder's own prediction of each
        # outcome, mapped to (-scale, +scale). Why in the latent and not only in a head: codes
        # are chosen by distance, so an outcome separates the types only if it moves the
        # latent; with these dims the k-means init and the nearest-code assignment both see
        # "buys / carts / bounces" as a large, explicit difference between buyers.
        logits = self.to_funnel(h)  # (B, n_funnel)
        funnel = self.funnel_scale * torch.tanh(0.5 * logits)  # = scale * (2 sigmoid - 1)
        return torch.cat([funnel, rest], dim=-1), logits  # (B, D)

    @torch.no_grad()
    def assign(self, tokens: Tensor, seq_len: Tensor, features: Tensor) -> Tensor:
        """Buyer type of each buyer: the nearest code to its latent, (B,) int64.

        Uses the codebook directly (no VQ forward), so it never touches EMA state or the
        k-means initialisation.
        """
        z = self.encode(tokens, seq_len, features)  # (B, D)
        return torch.cdist(z, self.vq.codebook).argmin(dim=-1)  # (B, K) -> (B,)

    # -- training pass -----------------------------------------------------------------------

    def forward(self, tokens: Tensor, seq_len: Tensor, features: Tensor, outcomes: Tensor,
                quantize: bool = True) -> VQVAEOutput:
        """Encode, (optionally) quantize, decode and score one batch.

        Args:
            tokens, seq_len, features: as in :meth:`encode`.
            outcomes: (B, n_outcomes) 0/1 funnel labels.
            quantize: False for the pre-training phase (a plain autoencoder, no codebook).
        """
        cfg = self.cfg
        tokens = tokens.long()
        z, funnel_logits = self._encode(tokens, seq_len, features)  # (B, D), (B, O) | None
        if quantize:
            zq, codes, commit = self.vq(z)  # (B, D), (B,), scalar
            if self.n_funnel:
                # Why not on the funnel dims: there the commitment would pull a buyer placed
                # in a code of the other outcome towards that code, against the outcome's own
                # supervision; measured, it undid the funnel split within a few epochs. The
                # funnel dims are held by their BCE; the rest commits to the code as usual.
                nf = self.n_funnel
                commit = commit + cfg.commitment_weight * F.mse_loss(z[:, nf:],
                                                                     zq.detach()[:, nf:])
                # The same for the decoders' straight-through gradient: they read the code's
                # funnel coordinates, but only the outcome supervision moves the buyer's.
                zq = torch.cat([zq[:, :nf].detach(), zq[:, nf:]], dim=-1)  # (B, D)
        else:
            zq, codes, commit = z, torch.full_like(seq_len, -1), z.new_zeros(())

        feat_loss = F.mse_loss(self.feat_out(zq), features)

        b, c, length = tokens.shape
        h = self.seq_in(zq).unsqueeze(1) + self.seq_pos.weight[:length].unsqueeze(0)  # (B, L, H)
        logits = self.seq_out(F.gelu(h))  # (B, L, sum(vocab))
        real = tokens[:, 0] > 0  # (B, L) real positions (padding is 0 on every channel)
        seq_loss = z.new_zeros(())
        for i, part in enumerate(logits.split(self.vocab, dim=-1)):  # part: (B, L, V_i)
            seq_loss = seq_loss + F.cross_entropy(part[real], tokens[:, i][real])  # (N_real, V_i)
        seq_loss = seq_loss / c

        out_loss = F.binary_cross_entropy_with_logits(self.outcome_head(zq), outcomes)
        funnel_loss = (F.binary_cross_entropy_with_logits(funnel_logits,
                                                          outcomes[:, self.funnel_index])
                       if funnel_logits is not None else z.new_zeros(()))
        loss = (cfg.w_features * feat_loss + cfg.w_sequence * seq_loss
                + cfg.w_outcomes * out_loss + cfg.w_funnel * funnel_loss + commit)
        return VQVAEOutput(codes=codes, latent=z, loss=loss, features=feat_loss,
                           sequence=seq_loss, outcomes=out_loss, funnel=funnel_loss,
                           commitment=commit)

    # -- codebook ----------------------------------------------------------------------------

    @torch.no_grad()
    def init_codebook(self, latents: Tensor) -> None:
        """k-means-initialise the codebook on ``latents`` (N, D), e.g. all pre-trained latents.

        Runs the library's own k-means ``kmeans_restarts`` times and keeps the lowest inertia,
        then fills the codebook buffers exactly as ``Codebook.init_embed_`` does. Why not the
        library's lazy init on the first batch: one batch of a skewed population seeds most
        codes on bouncers, and one random start of Lloyd's iterations is a lottery.
        """
        from vector_quantize_pytorch.vector_quantize_pytorch import kmeans

        cb = self.vq._codebook
        data = latents.float().unsqueeze(0)  # (N, D) -> (1, N, D): one codebook
        best = None
        for _ in range(max(1, self.cfg.kmeans_restarts)):
            means, bins = kmeans(data, self.cfg.k, self.cfg.kmeans_iters)  # (1, K, D), (1, K)
            inertia = float(torch.cdist(data[0], means[0]).amin(-1).pow(2).sum())  # (N, K) -> N
            if best is None or inertia < best[0]:
                best = (inertia, means, bins)
        _, means, bins = best
        cb.embed_avg.copy_(means * bins.unsqueeze(-1))  # (1, K, D)
        cb.cluster_size.copy_(bins)  # (1, K)
        cb.update_ema()
        cb.initted.fill_(True)
