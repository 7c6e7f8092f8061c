"""What one ``consortia simulate`` process is handed: its parties and the generated rows' contract check.

Written by the flow (``flows.simulation``) and read by the party process (``party_agent.simulation``), so it
lives in the core that both import."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from components.core.contract import ValidationSummary


class Assignment(BaseModel):
    """The parties one simulation process runs, and the summary of the generated rows' contract check."""

    party_configs: list[Path]
    validation: ValidationSummary
