"""The baseline of benches/dict.rs: Python's multiprocessing.Manager().dict().

Fills a Manager dict with N entries (16-byte keys, 64-byte values, as the Rust bench),
then times get and set of every key in a random order, one operation at a time (each is
a round trip to the manager's server process, whatever the size of the dict).

    python3 benches/manager_dict.py [N]      # prints: N get_ns set_ns
"""
import multiprocessing as mp
import random
import sys
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    manager = mp.Manager()
    d = manager.dict()
    value = b"\x07" * 64
    keys = [b"key-%012d" % i for i in range(n)]
    d.update({k: value for k in keys})  # one round trip
    order = list(range(n))
    random.Random(1).shuffle(order)
    assert len(d) == n and d[keys[n // 2]] == value
    t = time.perf_counter()
    for i in order:
        d[keys[i]]
    get = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in order:
        d[keys[i]] = value
    put = (time.perf_counter() - t) / n
    print(n, get * 1e9, put * 1e9)
    manager.shutdown()


if __name__ == "__main__":
    main()
