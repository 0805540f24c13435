#!/usr/bin/env python3
"""Synthetic templates with the statistics of real ones, for the approximate-index benchmarks.

Isotropic gaussian vectors are the worst case for approximate search and unlike real face
templates, which concentrate in far fewer directions. This fits a two-covariance model (the
generative model behind PLDA) to real templates of the default model pack:

    identity centre  c = mean + Lb z      (between-identity covariance Sb = Lb Lb^T)
    template         t = normalise(c + Lw w)   (within-identity covariance Sw = Lw Lw^T)

with Ledoit-Wolf shrinkage of both covariances towards isotropic (so that 275 real identities do
not make a million synthetic ones artificially low-rank), then draws n templates of n identities
and, for `--queries` of them, a second template of the same identity as the probe (its planted
mate). It prints the real and synthetic genuine/impostor cosines side by side and writes the file
that `bench/faiss/build/ivf_sweep --data` reads: int32 n, d, queries; float32 base[n*d],
probes[queries*d]; int64 mates[queries].

Input: the evaluation cache, filled by
    npm run eval -- fte --sets celeba,frll,yaleb,orl,yale
Run:
    python3 bench/faiss/face_like.py --n 1000000 --out /tmp/face-like-1m.bin
Needs numpy (Debian: python3-numpy).
"""
import argparse
import base64
import glob
import json
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def read_templates(pack):
    templates, identities = [], []
    for path in sorted(glob.glob(os.path.join(ROOT, '.eval', pack, '*.jsonl'))):
        name = os.path.basename(path)
        for line in open(path, encoding='utf8'):
            face = json.loads(line)
            if face.get('template') and not face.get('error'):
                templates.append(np.frombuffer(base64.b64decode(face['template']), dtype=np.float32))
                identities.append(name + ':' + face['identity'])
    if not templates:
        raise SystemExit('no cached templates: run `npm run eval -- fte --sets celeba,frll,yaleb,orl,yale` first')
    x = np.array(templates, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.unique(np.array(identities), return_inverse=True)[1]


def ledoit_wolf(samples, dof):
    """Shrunk covariance of centred samples (`dof` degrees of freedom) and the shrinkage (Ledoit & Wolf 2004)."""
    n, d = samples.shape
    covariance = samples.T @ samples / dof
    scale = np.trace(covariance) / d
    delta = ((covariance - scale * np.eye(d)) ** 2).sum() / d
    beta = sum(((np.outer(s, s) - covariance) ** 2).sum() for s in samples) / n / n / d
    shrinkage = min(beta, delta) / delta
    return (1 - shrinkage) * covariance + shrinkage * scale * np.eye(d), shrinkage


def square_root(covariance):
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.sqrt(np.clip(values, 0, None))).astype(np.float32)


def cosines(x, identity, rng, pairs=20000):
    genuine = [x[i] @ x[j] for k in range(identity.max() + 1)
               for members in [np.where(identity == k)[0]]
               for a, i in enumerate(members) for j in members[a + 1:]]
    a, b = rng.integers(0, len(x), pairs), rng.integers(0, len(x), pairs)
    keep = identity[a] != identity[b]
    return np.array(genuine), (x[a[keep]] * x[b[keep]]).sum(1)


def describe(label, genuine, impostor):
    print(f'{label}: genuine cosine mean {genuine.mean():.3f} median {np.median(genuine):.3f} '
          f'p5 {np.percentile(genuine, 5):.3f}; impostor mean {impostor.mean():.3f} sd {impostor.std():.3f} '
          f'p99.9 {np.percentile(impostor, 99.9):.3f}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, required=True)
    parser.add_argument('--queries', type=int, default=200)
    parser.add_argument('--out', required=True)
    parser.add_argument('--pack', default='default')
    parser.add_argument('--seed', type=int, default=7)
    args = parser.parse_args()

    x, identity = read_templates(args.pack)
    rng = np.random.default_rng(args.seed)
    centres = np.array([x[identity == k].mean(0) for k in range(identity.max() + 1)])
    mean = x.mean(0)
    within, within_shrinkage = ledoit_wolf(x - centres[identity], len(x) - len(centres))
    between, between_shrinkage = ledoit_wolf(centres - centres.mean(0), len(centres) - 1)
    spectrum = np.linalg.eigvalsh(np.cov(x.T))[::-1]
    print(f'{len(x)} real templates of {len(centres)} identities; 90 % of the variance in '
          f'{int(np.searchsorted(np.cumsum(spectrum) / spectrum.sum(), 0.9)) + 1} of {x.shape[1]} directions; '
          f'Ledoit-Wolf shrinkage: within {within_shrinkage:.3f}, between {between_shrinkage:.3f}')
    describe('real     ', *cosines(x, identity, rng))

    root_between, root_within = square_root(between), square_root(within)
    n, d, block = args.n, x.shape[1], 50_000
    mates = rng.choice(min(n, block), args.queries, replace=False).astype(np.int64)
    base = np.empty((n, d), np.float32)
    for start in range(0, n, block):
        count = min(block, n - start)
        centre = mean.astype(np.float32) + rng.standard_normal((count, d), dtype=np.float32) @ root_between.T
        if start == 0:
            mate_centres = centre[mates]
        template = centre + rng.standard_normal((count, d), dtype=np.float32) @ root_within.T
        base[start:start + count] = template / np.linalg.norm(template, axis=1, keepdims=True)
    probes = mate_centres + rng.standard_normal((args.queries, d), dtype=np.float32) @ root_within.T
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    genuine = (probes * base[mates]).sum(1)
    a, b = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
    describe('synthetic', genuine, (base[a] * base[b]).sum(1))
    with open(args.out, 'wb') as out:
        np.array([n, d, args.queries], np.int32).tofile(out)
        base.tofile(out)
        probes.astype(np.float32).tofile(out)
        mates.tofile(out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
