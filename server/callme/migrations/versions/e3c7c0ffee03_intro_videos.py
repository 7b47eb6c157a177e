"""intro videos and their posters

Revision ID: e3c7c0ffee03
Revises: e2b6c0ffee02
Create Date: 2026-12-01 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3c7c0ffee03'
down_revision = 'e2b6c0ffee02'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('expert_videos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=64), nullable=False),
    sa.Column('poster_name', sa.String(length=64), nullable=False),
    sa.Column('container', sa.String(length=8), nullable=False),
    sa.Column('video_codec', sa.String(length=16), nullable=False),
    sa.Column('audio_codec', sa.String(length=16), nullable=True),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("container IN ('mp4', 'webm')", name='ck_expert_videos_container'),
    sa.CheckConstraint('width > 0 AND height > 0', name='ck_expert_videos_size'),
    sa.CheckConstraint('duration_ms > 0', name='ck_expert_videos_duration_ms'),
    sa.CheckConstraint('bytes > 0', name='ck_expert_videos_bytes'),
    sa.ForeignKeyConstraint(['expert_id'], ['experts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('expert_id'),
    sa.UniqueConstraint('file_name'),
    sa.UniqueConstraint('poster_name')
    )


def downgrade():
    op.drop_table('expert_videos')
