"""Training, which no service runs: the seeds' nn4.small2 network with its
CSV weight loader, the triplet loss and fine-tuning on labelled folders."""
