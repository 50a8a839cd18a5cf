"""Progress for long jobs: a redrawn bar on a terminal, plain lines everywhere else.

A tqdm bar redraws itself with carriage returns, which a terminal shows as one line but a
log file, `| tee` or a CI page shows as hundreds. So when standard error is not a terminal,
progress_bar() returns a PlainProgress instead: one ordinary line every `interval` seconds
(and one at the end), with the same update / set_postfix / close methods.
"""

import sys
import time


class PlainProgress:
    def __init__(self, total, initial=0, unit="it", desc=None, interval=5.0, file=None):
        self.total, self.count, self.unit, self.desc = total, initial, unit, desc
        self.interval, self.file = interval, file or sys.stderr
        self.postfix = {}
        self.start_count, self.start = initial, time.perf_counter()
        self.last_line = self.start

    def update(self, n=1):
        self.count += n
        if time.perf_counter() - self.last_line >= self.interval:
            self.print_line()

    def set_postfix(self, **values):
        self.postfix = values

    def print_line(self):
        now = time.perf_counter()
        self.last_line = now
        rate = (self.count - self.start_count) / max(now - self.start, 1e-9)
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        share = f" ({100 * self.count / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {key} {value}" for key, value in self.postfix.items())
        prefix = f"{self.desc}: " if self.desc else ""
        print(f"{prefix}{done} {self.unit}{share}, {rate:.1f} {self.unit}/s, "
              f"{now - self.start:.0f} s{extra}", file=self.file, flush=True)

    def close(self):
        if self.count > self.start_count:
            self.print_line()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(total, initial=0, unit="it", desc=None, enabled=True, interval=5.0, **tqdm_options):
    """A tqdm bar on a terminal, a PlainProgress otherwise, None when not enabled."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        return PlainProgress(total, initial, unit, desc, interval)
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True,
                mininterval=0.5, **tqdm_options)
