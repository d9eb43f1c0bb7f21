"""Child process of the reader fuzz test: reads each file named on stdin, one result a line.

Lines out: ``START i``, then ``DONE i decoded|error <one-line reason>`` or ``BAD i <type>:
<message>`` (any exception other than VideoDecodeError), ``HANG i`` (over the per-file alarm).
A crash or a hang in C code shows as a missing DONE: the parent kills and restarts the child.
"""

from __future__ import annotations

import signal
import sys
import warnings

from timesformer.data.video import VideoDecodeError, VideoReader


class _Alarm(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def read_one(path: str) -> str:
    with VideoReader(path) as r:
        n = r.num_frames
        r.get_frames(sorted({0, n // 2, n - 1}))
        for _ in r.iter_clips([[0, min(1, n - 1)], [max(n - 2, 0), n - 1]]):
            pass
    return "decoded"


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    signal.signal(signal.SIGALRM, _on_alarm)
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        i, path = line.rstrip("\n").split("\t", 1)
        print(f"START {i}", flush=True)
        signal.alarm(seconds)
        try:
            result = read_one(path)
        except _Alarm:
            result = None
            print(f"HANG {i}", flush=True)
        except VideoDecodeError as e:
            msg = str(e)
            result = "error " + msg if "\n" not in msg else None
            if result is None:
                print(f"BAD {i} multi-line message: {msg!r}", flush=True)
        except Exception as e:  # noqa: BLE001 - reporting any other type is the point
            result = None
            print(f"BAD {i} {type(e).__name__}: {e}".replace("\n", " "), flush=True)
        finally:
            signal.alarm(0)
        if result is not None:
            print(f"DONE {i} {result}", flush=True)


if __name__ == "__main__":
    main()
