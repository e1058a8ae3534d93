"""Hypothesis strategies shared by the fuzz tests: random bytes, and a valid message
mutated (a byte changed, cut short, or a known start followed by junk)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


def mutations_of(valid: bytes, starts: Sequence[bytes], max_size: int) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=max_size),
        st.builds(
            lambda i, b: valid[:i] + bytes([b]) + valid[i + 1 :],
            st.integers(0, len(valid) - 1),
            st.integers(0, 255),
        ),
        st.builds(lambda i: valid[:i], st.integers(0, len(valid))),
        st.builds(
            lambda start, junk: start + junk,
            st.sampled_from(list(starts)),
            st.binary(max_size=max_size // 4),
        ),
    )


TFTP_OPCODES = [bytes([0, n]) for n in range(8)]
