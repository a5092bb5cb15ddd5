"""`python -m moot.runtime.nats --nats URL --agents module:setup`: run one worker."""

from ._worker import run_worker

run_worker()
