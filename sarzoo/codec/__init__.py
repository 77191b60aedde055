"""The codec (docs/codec.md): how many bits a latent takes, and real files of entropy-coded latents.

``roundtrip(model, x01, mask) -> (x01_hat, bits)`` is the one call a rate–distortion report needs:
what ``sarzoo decode`` would give back for one image and what ``sarzoo encode`` spends on its tiles.
``rates`` holds the arithmetic of bits per pixel every command reports; ``format`` the file layout;
``scene`` the tile grid and the coding of one image; ``files`` reading scenes and writing them back.
"""
from __future__ import annotations

from sarzoo.codec.rates import describe_latent, latent_size
from sarzoo.codec.scene import decode_tiles, encode_tiles, model_digest, roundtrip

__all__ = ["roundtrip", "encode_tiles", "decode_tiles", "model_digest", "latent_size", "describe_latent"]
