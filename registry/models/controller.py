"""The data controller whose registry this is (one row)."""

from sqlmodel import Field, SQLModel


class ControllerProfile(SQLModel, table=True):
    __tablename__ = "controller_profile"

    id: int = Field(default=1, primary_key=True)
    name: str = Field(max_length=200)
    established_in: str = Field(max_length=8)
    timezone: str = Field(default="Europe/Stockholm", max_length=64)
