"""The catalog pipeline's batches: flushed when full, on their timer, or at once when every item
in the pipeline waits on one (the end of a crawl, a trickle) instead of waiting out the timer."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf

import pytest

from crawler.pipelines import Batcher, Flow


@pytest.fixture
def executor():
    with cf.ThreadPoolExecutor(1) as ex:
        yield ex


def _batches():
    seen: list[list] = []

    def fn(values):
        seen.append(list(values))
        return [v * 10 for v in values]

    return seen, fn


def test_full_batches_flush_and_return_each_value_its_result(executor):
    seen, fn = _batches()

    async def main():
        b = Batcher(fn, 3, 3600, executor)
        futs = [b.add(i) for i in range(7)]
        done, pending = await asyncio.wait(futs, timeout=0.5)
        assert len(done) == 6 and len(pending) == 1  # the 7th waits for company (or the timer)
        await b.close()
        return [f.result() for f in futs]

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50, 60]
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_batch_flushes_at_once_when_every_item_in_the_pipeline_waits_on_it(executor):
    seen, fn = _batches()

    async def main():
        flow = Flow()
        b = Batcher(fn, 100, 3600, executor, flow)
        flow.active = 3                      # three items in the pipeline
        first = [b.add(1), b.add(2)]         # two wait; the third is still downloading
        await asyncio.sleep(0.05)
        assert seen == [] and not any(f.done() for f in first)
        last = b.add(3)                      # now all three wait: nothing else can join
        assert await asyncio.wait_for(asyncio.gather(*first, last), 5) == [10, 20, 30]
        assert flow.waiting == 0
        flow.active = 1                      # an item that leaves the pipeline makes the rest flush
        flow.active = 2
        f = b.add(4)
        await asyncio.sleep(0.05)
        assert not f.done()
        flow.active = 1
        flow.check()
        assert await asyncio.wait_for(f, 5) == 40

    asyncio.run(main())
    assert seen == [[1, 2, 3], [4]]


def test_the_timer_flushes_a_batch_that_waits_for_company(executor):
    seen, fn = _batches()

    async def main():
        flow = Flow()
        b = Batcher(fn, 100, 0.05, executor, flow)
        flow.active = 5
        return await asyncio.wait_for(b.add(7), 5)

    assert asyncio.run(main()) == 70 and seen == [[7]]
