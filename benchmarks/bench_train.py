"""Training step time (one D and one G update, WGAN-GP, style mixing) per resolution and width.

    python benchmarks/bench_train.py [--widths cpu paper] [--steps 5]

Prints milliseconds per step and images/s on this machine's device; asserts nothing.
"""

import argparse
import time

import torch

from stylegan import losses
from stylegan.networks import Discriminator, Generator, mix_styles

WIDTHS = {
    "cpu": dict(channel_base=256, channel_max=32, z_dim=32, w_dim=32),
    "paper": dict(channel_base=16384, channel_max=512, z_dim=512, w_dim=512),
}


def step(G, D, opt_g, opt_d, real, resolution, alpha):
    n = real.shape[0]

    def critic(x):
        return D(x, resolution=resolution, alpha=alpha)

    with torch.no_grad():
        fake = G(torch.randn(n, G.z_dim), resolution=resolution, alpha=alpha)
    d_loss = losses.wgan_d_loss(critic(real), critic(fake))
    d_loss = d_loss + 10 * losses.gradient_penalty(critic, real, fake)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    ws = mix_styles(
        G.map(torch.randn(n, G.z_dim)), G.map(torch.randn(n, G.z_dim)), G.num_ws_at(resolution) // 2
    )
    g_loss = losses.wgan_g_loss(critic(G.synthesis(ws, resolution=resolution, alpha=alpha)))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", default=["cpu", "paper"], choices=list(WIDTHS))
    parser.add_argument("--resolutions", nargs="+", type=int, default=[8, 32, 64])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    for widths in args.widths:
        for resolution in args.resolutions:
            G = Generator(resolution=resolution, **WIDTHS[widths])
            kw = {k: v for k, v in WIDTHS[widths].items() if k.startswith("channel")}
            D = Discriminator(resolution=resolution, **kw)
            opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
            opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
            real = torch.rand(args.batch, 3, resolution, resolution) * 2 - 1
            step(G, D, opt_g, opt_d, real, resolution, 0.5)  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                step(G, D, opt_g, opt_d, real, resolution, 0.5)
            ms = (time.perf_counter() - start) / args.steps * 1000
            print(
                f"{widths:>5} widths {resolution:>4}px: {ms:8.1f} ms/step "
                f"{args.batch / ms * 1000:8.1f} images/s"
            )


if __name__ == "__main__":
    main()
