"""torch's CUDA caching allocator, replayed: the bytes `torch.cuda.max_memory_allocated()` reports are block sizes,
not tensor sizes, and blocks are rounded and sometimes not split.

Why: a tensor of 1.125 MiB takes a block of a 20 MiB segment; when what would remain of that segment is 1 MiB or
less, the allocator hands over the whole remainder instead of splitting it (`should_split`), and the stat counts
it. Over a model's weights this is 1-3% for a small model (8.8 MiB on BART-base, measured on the H100), which is
the rest of the gap between live tensor bytes and the measured peak. The rules below are those of
c10/cuda/CUDACachingAllocator.cpp (torch 2.11) with the default configuration (no `max_split_size_mb`, no
`roundup_power2_divisions`, no expandable segments):
- `round_size`: at least 512 bytes, rounded up to a multiple of 512;
- small pool for requests of at most 1 MiB, carved from 2 MiB segments; large pool otherwise, from 20 MiB
  segments below 10 MiB and from segments rounded up to 2 MiB above (`get_allocation_size`);
- best fit among the free blocks of the pool (`get_free_block`, smallest size then lowest address);
- `should_split`: small blocks split when at least 512 bytes remain, large ones when more than 1 MiB remains;
- a freed block merges with free neighbours of its segment; segments are kept (no `empty_cache`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["CachingAllocator"]

MIN_BLOCK = 512
SMALL_SIZE = 1 << 20
SMALL_BUFFER = 2 << 20
LARGE_BUFFER = 20 << 20
MIN_LARGE_ALLOC = 10 << 20
ROUND_LARGE = 2 << 20


def round_size(size: int) -> int:
    return MIN_BLOCK if size < MIN_BLOCK else MIN_BLOCK * -(-size // MIN_BLOCK)


def segment_size(size: int) -> int:
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return ROUND_LARGE * -(-size // ROUND_LARGE)


@dataclass
class _Block:
    address: int
    size: int
    small: bool
    segment: int
    free: bool = True
    prev: _Block | None = field(default=None, repr=False)
    next: _Block | None = field(default=None, repr=False)


class CachingAllocator:
    """Allocated bytes as the caching allocator counts them: `malloc(nbytes)` returns a handle, `free(handle)`."""

    def __init__(self) -> None:
        self.allocated = 0
        self.peak = 0
        self.reserved = 0
        self._pools: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # (size, address) of free blocks
        self._by_address: dict[int, _Block] = {}
        self._next_address = 0

    def reset_peak(self) -> None:
        self.peak = self.allocated

    def malloc(self, nbytes: int) -> int:
        size = round_size(nbytes)
        small = size <= SMALL_SIZE
        pool = self._pools[small]
        index = bisect.bisect_left(pool, (size, -1))
        if index < len(pool):
            _, address = pool.pop(index)
            block = self._by_address[address]
        else:
            seg = segment_size(size)
            block = _Block(self._next_address, seg, small, self._next_address)
            self._next_address += seg + ROUND_LARGE  # segments are never adjacent
            self._by_address[block.address] = block
            self.reserved += seg
        remaining = block.size - size
        if (remaining >= MIN_BLOCK) if small else (remaining > SMALL_SIZE):
            rest = _Block(block.address + size, remaining, small, block.segment, True, block, block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = size
            self._by_address[rest.address] = rest
            bisect.insort(pool, (rest.size, rest.address))
        block.free = False
        self.allocated += block.size
        self.peak = max(self.peak, self.allocated)
        return block.address

    def free(self, handle: int) -> None:
        block = self._by_address[handle]
        self.allocated -= block.size
        block.free = True
        pool = self._pools[block.small]
        for neighbour in (block.prev, block.next):
            if neighbour is not None and neighbour.free:
                pool.remove((neighbour.size, neighbour.address))
                del self._by_address[neighbour.address]
                if neighbour is block.prev:
                    neighbour.size += block.size
                    neighbour.next = block.next
                    if block.next is not None:
                        block.next.prev = neighbour
                    if block.address in self._by_address and self._by_address[block.address] is block:
                        del self._by_address[block.address]
                    block = neighbour
                else:
                    block.size += neighbour.size
                    block.next = neighbour.next
                    if neighbour.next is not None:
                        neighbour.next.prev = block
                self._by_address[block.address] = block
        bisect.insort(pool, (block.size, block.address))
