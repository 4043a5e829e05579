"""Helpers shared by the tests (no test imports another test, or a bench script): paths, small lessons and
configs, the method contract table, and the app's Train outputs as the live-app tests read them."""
