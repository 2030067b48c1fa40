"""The training job: a container job started per queued training request."""
