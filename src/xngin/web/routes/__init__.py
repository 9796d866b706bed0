"""The UI's routes, one module per part of the flow: sign-in, participants, design, experiments,
results."""
