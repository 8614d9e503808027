"""ByteQueue against a plain bytes reference: any chunking, any sequence of operations."""

from __future__ import annotations

import random

from dittofs.bytequeue import ByteQueue


def test_take_skip_head_match_a_flat_buffer():
    rng = random.Random(5)
    for _ in range(200):
        q, ref = ByteQueue(), b""
        for _ in range(40):
            op = rng.random()
            if op < 0.4:
                chunk = rng.randbytes(rng.randrange(0, 300))
                q.append(chunk)
                ref += chunk
            elif ref:
                n = rng.randrange(0, len(ref) + 1)
                if op < 0.7:
                    got = q.take(n)
                    assert type(got) is bytes and got == ref[:n]
                    ref = ref[n:]
                elif op < 0.85:
                    q.skip(n)
                    ref = ref[n:]
                elif n:
                    assert bytes(q.head(n))[:n] == ref[:n]
            assert len(q) == len(ref)
        assert q.take(len(ref)) == ref and len(q) == 0
