"""The learner's side: ``grader watch``, ``check()`` in a notebook, and the state kept between gradings."""
