"""Whether a read request may start a transfer, and at whose cost (pure; the transport counts).

A TFTP request's source address proves nothing (UDP is forged at no cost), so slots are not
shared out by address. What proves a peer is an ACK on the transfer's own port: only a
peer that receives our OACK or DATA learns that port. A transfer whose peer has never
answered is therefore the one to give up its slot when every slot is taken: a flood of
never-acknowledged requests (forged, or asking `timeout 255`) can hold the slots only until
the next real request, which evicts the oldest of them; a phone that answered is never
evicted. Transfers whose peer answers but then stalls end after Limits.max_stall.

The per-source cap (`max_tftp_per_source`) follows the same rule among one source's
transfers: requests forged from a phone's own address would otherwise fill that address's
slots and lock the phone out, so a request from a source at its cap evicts the oldest
never-answered transfer of that source; if every one of them answered, it is busy.
"""

from __future__ import annotations

from enum import Enum


class Admission(Enum):
    START = "start"  # a slot is free
    EVICT = "evict"  # every slot is taken: the oldest never-answered transfer gives up its own
    EVICT_SOURCE = "evict_source"  # the source is at its cap: the oldest never-answered
    #   transfer of that source gives up its slot (a slot of the global cap too)
    BUSY = "busy"  # every slot is held by a peer that answered: ERROR 0 "busy"
    BUSY_SOURCE = "busy_source"  # the source runs max_tftp_per_source transfers whose
    #   peers all answered: ERROR 0 "busy"


def admit(
    running: int,
    from_source: int,
    evictable: bool,
    evictable_from_source: bool,
    max_transfers: int,
    per_source: int,
) -> Admission:
    """The decision for a new request, given the transfers `running` in all, those running
    for the request's source address (`from_source`), whether a running transfer's peer has
    never answered (`evictable`) and whether one of the source's own has never answered
    (`evictable_from_source`), against `max_transfers` and `per_source`.

    A source at its cap evicts one of its own or nobody: evicting another source's transfer
    would leave it at its cap. Its own victim frees a global slot as well, so the global cap
    still holds."""
    if from_source >= per_source:
        return Admission.EVICT_SOURCE if evictable_from_source else Admission.BUSY_SOURCE
    if running < max_transfers:
        return Admission.START
    return Admission.EVICT if evictable else Admission.BUSY
