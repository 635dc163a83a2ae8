"""Batch transform jobs (SageMaker's CreateTransformJob): the model's serving container, fed
an input prefix's records. A transform is a kind of job (`jobs.models.Job`, kind
`transform`); this app sits above the registry and endpoints, whose models it runs.

- `services`: the request, checked and stored (every check before anything starts).
- `api/`: `POST /api/v1/transform-jobs`; the job is then read, stopped and followed through
  the jobs API.
- `runner`: the job's life on a worker (lease, watchdog, transitions shared with training,
  `jobs.runner.JobRunner`), along its phases: `inputs` (the model checked again, the input
  objects downloaded), `plan` (what it runs with), `feeding` (one object's requests and
  answers).
- `records`: splitting an input object into requests and assembling the answers (pure).
- `client`: POST /invocations with keep-alive, retries and the model's error messages.
- `selectors`: the staged models running transforms still need.
"""
