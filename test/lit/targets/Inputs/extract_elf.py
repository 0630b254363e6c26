"""Copies the ELF executable embedded in a .kiln artifact to a file:
extract_elf.py IN.kiln OUT.so (the ELF ends with its section header table)."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
start = data.find(b"\x7fELF")
if start < 0:
    sys.exit("no ELF in artifact")
shoff, = struct.unpack_from("<Q", data, start + 0x28)
shentsize, shnum = struct.unpack_from("<HH", data, start + 0x3A)
end = start + shoff + shentsize * shnum
open(sys.argv[2], "wb").write(data[start:end])
