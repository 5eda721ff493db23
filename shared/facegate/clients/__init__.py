"""Client libraries for the things around facegate: a camera (presign and
upload), a lock (verify and listen) and an administrator (doors, enrolment,
revocation)."""
