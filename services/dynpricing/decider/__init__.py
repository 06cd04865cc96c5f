"""A stateless pricing replica: demand in, decisions out, the model read from the learner."""
