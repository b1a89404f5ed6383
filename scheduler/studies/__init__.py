"""Stage 5, studies: backtests, replays, baselines, what-if grids and the scenario generator."""
