"""``python -m crawler.emulators [--port P] [--seed S] [--hosts N] ...``: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .emulator import EmulatorSet
from .plan import DEFAULT_TRICKY, SLOW_KINDS, EmulatorError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crawler.emulators", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="port of every server (each on its own address); 0: ephemeral")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hosts", type=int, default=3, help="image hosts on 127.0.0.2, 127.0.0.3, ...")
    p.add_argument("--total", type=int, default=50, help="results per keyword and source")
    p.add_argument("--tricky-every", type=int, default=3, help="every n-th result is a bad/tricky case; 0: none")
    p.add_argument("--no-slow", action="store_true", help="leave out the slow and drip routes from results")
    p.add_argument("--slow-delay", type=float, default=3.0)
    p.add_argument("--content", choices=("abstract", "fossil"), default="abstract",
                   help="what good images show: random shapes, or fossil-like drawings per clade label")
    p.add_argument("--config", help="JSON object of EmulatorSet keyword arguments (overrides the flags); "
                                    "prints the base URLs as one JSON line")
    args = p.parse_args(argv)
    content = "crawler.emulators.fossils:fossil_content" if args.content == "fossil" else None
    tricky = [k for k in DEFAULT_TRICKY if k not in SLOW_KINDS] if args.no_slow else None
    kwargs = dict(seed=args.seed, n_hosts=args.hosts, total_per_keyword=args.total,
                  tricky_every=args.tricky_every, tricky=tricky, slow_delay=args.slow_delay,
                  content=content, port=args.port)
    try:
        if args.config:
            kwargs.update(json.loads(args.config))
            if kwargs.get("size_range"):
                kwargs["size_range"] = tuple(kwargs["size_range"])
        emu = EmulatorSet(**kwargs).start()
    except (EmulatorError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.config:
        print(json.dumps(emu.base_urls), flush=True)
    else:
        print(json.dumps(emu.base_urls, indent=2))
        print("fid crawl " + " ".join(f"--engine-url {u}" for u in emu.engine_urls()))
    print("serving; Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
