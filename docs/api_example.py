# Two methods through the app's Python API; prints their AP. Run `python app.py` first.
import sys

from gradio_client import Client

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 45        # optimizer steps per task
client = Client(url, verbose=False)
for method in ("seqft", "replay"):
    run = client.predict(method=method, steps_per_task=steps, wait=True, api_name="/run")
    print(f"{method}: AP {run['result']['metrics']['AP']:.3f} (run {run['run_id']})")
