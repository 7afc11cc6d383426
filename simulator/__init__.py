"""The simulator: shopper scenarios and behaviours, seeded schedules, engines and the operation history."""
