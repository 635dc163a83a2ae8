"""MLflow's tracking REST API (the routes the `mlflow` client uses), over the same services
as the native API. See docs/experiments.md for what is covered and the team rule."""
