"""Forms of the experiments pages. They parse and shape input; every rule (names, lengths,
uniqueness) lives in the experiments services."""

from __future__ import annotations

from django import forms

from experiments.models import Experiment, Run
from experiments.validation import MAX_RUN_NAME_LENGTH


class ExperimentForm(forms.Form):
    """Creating an experiment, and renaming or describing one."""

    name = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"placeholder": "e.g. churn-model"})
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What this experiment is about"}),
    )

    @classmethod
    def for_experiment(cls, experiment: Experiment) -> ExperimentForm:
        return cls(initial={"name": experiment.name, "description": experiment.description})


class RunRenameForm(forms.Form):
    """Renaming a run. The limit is the service's, said here too so the field says it."""

    name = forms.CharField(max_length=MAX_RUN_NAME_LENGTH)

    @classmethod
    def for_run(cls, run: Run) -> RunRenameForm:
        return cls(initial={"name": run.name})
