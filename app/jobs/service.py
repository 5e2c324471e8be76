"""Reading jobs. Running them is a flow's (app/flows/grants.py)."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs import repository
from app.jobs.errors import JobNotFound
from app.jobs.models import Job


async def get_job(*, session: AsyncSession, job_id: int) -> Job:
    job = await repository.get_job(session, job_id)
    if job is None:
        raise JobNotFound(f"No job {job_id}.")
    return job
