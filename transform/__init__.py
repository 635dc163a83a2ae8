"""Batch transform jobs: the model's serving container, fed an input prefix's records.

- `records`: splitting an input object into requests and assembling the answers (pure).
- `client`: POST /invocations with keep-alive, retries and the model's error messages.
- `runner`: the job's life on a worker (lease, watchdog, transitions shared with training).
The request is checked and stored by `jobs.services.transform`.
"""
