"""Population simulation: a merchant's buyer types shop on its storefront, episode by episode.

Example:
    >>> from simpersona_env.simulation import SimulationSpec, simulate
    >>> spec = SimulationSpec(population=[0.7, 0.3], n_buyers=20, policy="oracle")
    >>> res = simulate(spec, "runs/simulate/doc", overwrite=True, progress=False)  # doctest: +SKIP
"""

from simpersona_env.simulation.episodes import (
    EPISODES_FILE,
    EVENTS_FILE,
    EpisodeWriter,
    events_of,
    read_episode_records,
    write_event_log,
)
from simpersona_env.simulation.population import BuyerPlan, PopulationPersona, population_probs
from simpersona_env.simulation.runner import (
    RUNNERS,
    SimulationError,
    SimulationResult,
    SimulationSpec,
    SimulationWorker,
    make_policy,
    simulate,
    summarize,
)

__all__ = [
    # the run
    "SimulationSpec", "SimulationResult", "SimulationWorker", "SimulationError", "simulate",
    "summarize", "make_policy", "RUNNERS",
    # who comes
    "BuyerPlan", "PopulationPersona", "population_probs",
    # on disk
    "EpisodeWriter", "read_episode_records", "events_of", "write_event_log", "EPISODES_FILE",
    "EVENTS_FILE",
]
