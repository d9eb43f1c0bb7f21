"""Child process of the checkpoint fuzz test: loads each file named on stdin, one line each.

Lines out: ``START i``, then ``DONE i loaded|error <one-line reason>``, or ``BAD i <type>:
<message>`` (any exception other than CheckpointError, or a multi-line message), ``HANG i``
(over the per-file alarm). A crash shows as a missing DONE: the parent restarts the child.
Even cases go through read_checkpoint, odd ones through from_pretrained.
"""

from __future__ import annotations

import resource
import signal
import sys
import warnings

from timesformer.models.weights import CheckpointError, from_pretrained, read_checkpoint


class _Alarm(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    limit = 6 << 30  # a damaged size field must fail as MemoryError, not take the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        i, path = line.rstrip("\n").split("\t", 1)
        print(f"START {i}", flush=True)
        signal.alarm(seconds)
        result = None
        try:
            if int(i) % 2:
                from_pretrained(path)
            else:
                read_checkpoint(path)
            result = "loaded"
        except _Alarm:
            print(f"HANG {i}", flush=True)
        except CheckpointError as e:
            msg = str(e)
            if "\n" in msg or path not in msg:
                print(f"BAD {i} message not one line naming the file: {msg!r}", flush=True)
            else:
                result = "error " + msg
        except Exception as e:  # noqa: BLE001 - reporting any other type is the point
            print(f"BAD {i} {type(e).__name__}: {e}".replace("\n", " "), flush=True)
        finally:
            signal.alarm(0)
        if result is not None:
            print(f"DONE {i} {result}", flush=True)


if __name__ == "__main__":
    main()
