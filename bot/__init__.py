"""warroom: the Slack edge, the terminal shell, the scheduler and the outbox."""
