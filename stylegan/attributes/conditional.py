"""Attribute-conditioned sampling: faces the classifier agrees have the requested attributes.

Two steps per batch of seeds. *Shift*: each requested attribute's signed distance ``w @ n + b``
(in W, before truncation) is raised to at least ``shift`` standard deviations on the requested
side, moving along that attribute's direction made orthogonal to the other requested ones, so
satisfying one request does not undo another (an attribute without a direction, which the
classifier gave every fitted face the same label for, is left to rejection). *Reject*: the
batch is rendered and classified, and only faces on which the classifier agrees with every
request are kept. Draws continue, seed after seed, until ``n`` faces are kept or ``max_draws``
seeds were drawn.

``shift=0`` is plain rejection sampling. The returned statistics say what it cost: the
agreement rate of the drawn (shifted) faces and the number of seeds drawn per kept face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from stylegan import sampling
from stylegan.attributes.directions import Directions, orthogonalize
from stylegan.errors import ConfigError, UserError


@dataclass
class ConditionalResult:
    images: Tensor  # [kept, C, r, r] CPU float in [-1, 1]
    seeds: list[int]  # the seed of each kept face
    drawn: int  # seeds used: up to the last kept face's (a last batch's rest is not counted)
    agreed: int  # of those, the faces the classifier agreed with

    @property
    def agreement(self) -> float:
        return self.agreed / max(1, self.drawn)

    @property
    def cost(self) -> float:
        """Seeds drawn per kept face."""
        return self.drawn / max(1, len(self.seeds))


def shift_towards(
    w: Tensor, directions: Directions, request: Sequence[tuple[str, bool]], shift: float
) -> Tensor:
    """w [N, w_dim] with each requested attribute at least ``shift`` stds on its side."""
    if shift < 0:
        raise ConfigError(f"conditional.shift must be >= 0, got {shift}")
    if shift == 0:
        return w
    index = [directions.index(name) for name, _ in request]
    w = w.clone()
    for i, (a, (_, wanted)) in enumerate(zip(index, request, strict=True)):
        n = directions.normals[a].to(w)
        if float(n.norm()) == 0:
            continue  # every fitted face had one label: no direction, rejection alone
        others = [directions.normals[b].to(w) for j, b in enumerate(index) if j != i]
        step = orthogonalize(n, others) if others else n
        along = float(step @ n)  # how much a unit step moves the distance along n
        sign = 1.0 if wanted else -1.0
        distance = sign * (w @ n + float(directions.offsets[a]))  # [N], >0 on the wanted side
        need = (shift * float(directions.scales[a]) - distance).clamp(min=0)
        w += (sign * need / along)[:, None] * step[None]
    return w


@torch.no_grad()
def conditional_faces(
    G,
    classifier: torch.nn.Module,
    directions: Directions,
    request: Sequence[tuple[str, bool]],
    *,
    n: int,
    seed: int = 0,
    shift: float = 1.0,
    max_draws: int = 10_000,
    psi: float | Sequence[float] = 1.0,
    cutoff: int | None = None,
    noise_mode: str = "random",
    resolution: int | None = None,
    batch_size: int = 32,
    progress: bool | None = None,
) -> ConditionalResult:
    """Up to ``n`` faces from seeds ``seed, seed+1, ...`` that the classifier agrees have the
    ``request`` (``[(name, wanted)]``); see the module doc."""
    if max_draws < n:
        raise ConfigError(f"conditional.max_draws ({max_draws}) must be >= n ({n})")
    names = list(getattr(classifier, "attributes", directions.attributes))
    cls_index = [names.index(name) for name, _ in request]
    wanted = torch.tensor([w for _, w in request])
    device = next(G.parameters()).device
    kept_images, kept_seeds, drawn, agreed = [], [], 0, 0
    bar = tqdm(total=n, unit="face", desc="conditional faces", disable=progress is False)
    next_seed = seed
    while len(kept_seeds) < n and drawn < max_draws:
        count = min(batch_size, max_draws - drawn)
        seeds = list(range(next_seed, next_seed + count))
        next_seed += count
        z = sampling.latents_for_seeds(seeds, G.z_dim)
        w = sampling.map_latents(G, z, psi=1.0, batch_size=batch_size)[:, 0]
        w = shift_towards(w, directions, request, shift)
        ws = G.truncate(w[:, None].repeat(1, G.num_ws, 1), truncation_psi=psi,
                        truncation_cutoff=cutoff)  # fmt: skip
        images = sampling.render_ws(G, ws, resolution=resolution, noise_mode=noise_mode,
                                    noise_seeds=seeds, batch_size=batch_size)  # fmt: skip
        probs = torch.sigmoid(classifier(images.to(device)).float()).cpu()
        ok = ((probs[:, cls_index] >= 0.5) == wanted[None]).all(dim=1)
        room = n - len(kept_seeds)
        take = ok.nonzero().flatten()[:room].tolist()
        # Seeds past the n-th kept face were drawn only because batches have a fixed shape:
        # they are not counted (the next call may start at seed + drawn).
        used = take[-1] + 1 if len(take) == room else count
        drawn += used
        agreed += int(ok[:used].sum())
        kept_images.append(images[take])
        kept_seeds += [seeds[i] for i in take]
        bar.update(len(take))
    bar.close()
    if not kept_seeds:
        raise UserError(
            f"none of {drawn} faces has {request_text(request)} according to the classifier; "
            "raise conditional.shift or conditional.max_draws"
        )
    return ConditionalResult(torch.cat(kept_images), kept_seeds, drawn, agreed)


def request_text(request: Sequence[tuple[str, bool]]) -> str:
    return "[" + ", ".join(n if w else f"~{n}" for n, w in request) + "]"
