from typing import Annotated

from fastapi import APIRouter, Path

from app.auth import AdminUser
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.ids import MAX_ID
from app.jobs import service
from app.jobs.errors import JobNotFound
from app.jobs.schemas import JobRead

admin = APIRouter(prefix="/api/v1/admin/jobs", tags=["jobs (admin)"])
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]


@admin.get("/{job_id}", responses=problem_responses(Unauthorized, Forbidden, JobNotFound))
async def get_job(job_id: JobId, session: SessionDep, _: AdminUser) -> JobRead:
    """A background job's progress: `running` (`done` of `total`), `done` or `failed`."""
    return JobRead.model_validate(await service.get_job(session=session, job_id=job_id))
