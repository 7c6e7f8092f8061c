from party_agent.cli import app

app()
