"""The worker side of endpoints: starting, checking, replacing and stopping serving containers.

One module per operation, all run by the Celery tasks in `endpoints.tasks`:
- `containers`: what every operation shares: an instance's container name and labels,
  starting instances and waiting for their /ping, removing them and their team's network;
- `deploy`: Creating → InService (or Failed), and Deleting → gone;
- `rollout`: Updating: the new config comes up, traffic switches, the old one drains, or a
  failure rolls back;
- `health`: the periodic check (/ping every instance in rotation) and healing (replace an
  unhealthy instance);
- `recovery`: what a dead worker or a crash left behind: operations to resume, orphaned
  containers, idle networks.

Every function takes ids and is safe to run again (a task redelivered after a worker died
finds what the first attempt left and carries on or cleans up). Containers are found again by
their labels, never by memory. An instance's status changes only through
`endpoints.services.instances.instance_transition`, which logs each move with the component
that made it (`Component`: deployment, roll-out, health check, healing, deletion) and why.

Traffic safety, which the data plane relies on:
- an instance receives traffic only once it is HEALTHY and its config is the endpoint's;
- an update switches `Endpoint.config` in one transaction, then keeps the old instances
  running for DRAIN_SECONDS (longer than the data plane's routing cache) before stopping them;
- an instance found dead or failing /ping goes UNHEALTHY (out of rotation) at once; its
  replacement starts, becomes healthy, and only then is the dead one removed;
- the data plane sends a request to the address an instance row records (127.0.0.1:port, or
  an IP on ENDPOINT_NETWORK), and the engine hands addresses out again once their container
  is gone (after a restart of the engine, from the start of its range). So that requests
  meant for one endpoint do not reach another endpoint's new container, a serving container
  starts only once every instance taken out of rotation has been out longer than the data
  plane's routing cache, and a new container's address at once retires any row still
  claiming it in rotation (one the check has not found dead yet: its requests can reach the
  new container until the routing cache expires, 1 s).

The Docker engine going away (a restart of dockerd without live-restore stops every
container) is not the instances' fault: while it does not answer, the check only pings the
recorded addresses, instances that stop answering go UNHEALTHY (the endpoint stays InService,
showing no healthy instance), and nothing is started, removed or resumed. Once the engine
answers, the dead instances are replaced as usual.
"""
