"""One grading, stage by stage: the source read, the reference's expected outputs, the submission's run
judged and compared leaf by leaf, mistakes matched, findings diagnosed; and many gradings as a batch."""
