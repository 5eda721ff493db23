"""What running a service needs: settings, the worker runner, retries."""
