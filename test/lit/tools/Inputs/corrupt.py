"""Writes damaged copies of a .kiln artifact: corrupt.py GOOD.kiln OUT_DIR"""
import os
import random
import struct
import sys

good = open(sys.argv[1], "rb").read()
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
rng = random.Random(7)


def write(name, data):
    open(os.path.join(out, name), "wb").write(data)


def flip(data, pos):
    b = bytearray(data)
    b[pos] ^= 1 << rng.randrange(8)
    return bytes(b)


meta_size = struct.unpack_from("<Q", good, 16)[0]
write("truncated.kiln", good[: len(good) // 2])
write("random.kiln", bytes(rng.randrange(256) for _ in range(4096)))
write("empty.kiln", b"")
write("header.kiln", flip(good, 2))
write("metadata.kiln", flip(good, 64 + meta_size // 2))
write("executable.kiln", flip(good, 64 + meta_size + (len(good) - 64 - meta_size) // 3))
# 200 random single-bit flips anywhere in the file.
for i in range(200):
    write(f"flip_{i}.kiln", flip(good, rng.randrange(len(good))))
