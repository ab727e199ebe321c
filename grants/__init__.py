"""jitbot core: just-in-time elevation requests, their rules, lifecycle and audit trail."""
