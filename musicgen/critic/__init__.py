"""The style critic: which composer a piano recording or MIDI file sounds like.

Five bidirectional GRUs over log band power (one band per semitone), averaged. The runtime API
is here (features, model, loading, inference); training, evaluation and cross-validation are in
corpus, train, report, retest and crossval; the `classify` and `critic` subcommands in cli.
"""

from musicgen.critic.api import (
    AUDIO_SUFFIXES,
    Classifier,
    classify_audio,
    classify_file,
    classify_score,
    load_classifier,
    sounds_like,
)

__all__ = ["AUDIO_SUFFIXES", "Classifier", "classify_audio", "classify_file", "classify_score",
           "load_classifier", "sounds_like"]
