"""Regenerate prices.csv: a year of made-up daily prices for a made-up ticker (ours, no download).

A seeded random walk, so the file is the same on every machine: `python make_prices.py`.
"""

import csv
import datetime
import random
from pathlib import Path


def main() -> None:
    rng = random.Random(19)
    day = datetime.date(2024, 1, 2)
    close = 100.0
    rows = []
    while len(rows) < 252:
        if day.weekday() < 5:
            open_ = close * (1 + rng.gauss(0, 0.004))
            close = open_ * (1 + rng.gauss(0.0004, 0.015))
            high = max(open_, close) * (1 + abs(rng.gauss(0, 0.006)))
            low = min(open_, close) * (1 - abs(rng.gauss(0, 0.006)))
            volume = int(1_000_000 * (1 + abs(rng.gauss(0, 0.5)) + 8 * abs(close - open_) / open_))
            rows.append([day.isoformat(), *(f"{v:.2f}" for v in (open_, high, low, close)), volume])
        day += datetime.timedelta(days=1)
    with (Path(__file__).with_name("prices.csv")).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "open", "high", "low", "close", "volume"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
