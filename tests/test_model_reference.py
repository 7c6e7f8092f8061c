"""What ``consortia serve`` is given and what it answers: model references and MLflow's shortened errors."""

from __future__ import annotations

import pytest

from components.adapters.model_server import short_message
from components.core.errors import ModelNotFound, PermanentError
from flows.serve import ModelReference


def test_a_reference_names_an_alias_or_a_version():
    assert ModelReference.parse("consortia-breast-cancer@champion") == ModelReference(
        "consortia-breast-cancer", "champion"
    )
    assert ModelReference.parse("claims@12") == ModelReference("claims", version=12)
    assert ModelReference.parse("team@org@challenger") == ModelReference("team@org", "challenger")  # the last @


@pytest.mark.parametrize("text", ["claims", "claims@", "@champion", ""])
def test_a_reference_without_name_and_target_is_refused(text: str):
    with pytest.raises(ModelNotFound, match="NAME@ALIAS or NAME@VERSION") as refused:
        ModelReference.parse(text)
    assert isinstance(refused.value, PermanentError)


def test_mlflow_errors_keep_only_the_reason():
    wrapped = (
        "Failed to predict data '   radius  mean_texture\n0   17.99   10.38\n\n[1 rows x 2 columns]'. \n"
        "Error: Failed to enforce schema of data '   radius  mean_texture\n0   17.99   10.38' with schema "
        "'['mean_radius': double (required), 'mean_texture': double (required)]'. "
        "Error: Model is missing inputs ['mean_radius']. Note that there were extra inputs: ['radius']."
    )

    assert (
        short_message(wrapped)
        == "Model is missing inputs ['mean_radius']. Note that there were extra inputs: ['radius']."
    )
    plain = "Invalid input. Failed to convert column mean_area to type 'float64'. Error: 'ValueError(...)'"
    assert short_message(plain) == plain  # not wrapped: as MLflow said it
