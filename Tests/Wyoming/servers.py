#!/usr/bin/env python3
"""Wyoming servers for the Swift tests, built on the protocol's reference package (`wyoming` 1.x).

One process serves one mode on 127.0.0.1:PORT and prints `READY <port>` once it listens:

  asr     `transcribe` + audio -> `transcript` (--transcript; `{bytes}` in it becomes the audio bytes received,
          `{format}` the audio's "rate width channels" (of `audio-start`; "mixed" if a chunk differs), `{language}`
          the `transcribe`'s language);
          --stream sends `transcript-start`/`-chunk` (one per word)/`-stop` first; --answer-after-bytes N answers
          as soon as N audio bytes arrived, before `audio-stop` (proves the client streams as audio arrives)
  intent  `recognize` -> `intent` for the known phrases, else `not-recognized`
  handle  `transcript` -> `handled` for the known phrases, else `not-handled`
  tts     `synthesize` -> espeak-ng's speech as `audio-start`, `audio-chunk`s, `audio-stop`
  wake    `detect` + audio -> `detection` after --detect-after-ms of audio; `not-detected` at `audio-stop` if none
  all     every one of the above

--hostile KIND makes every answer (`info` too, unless --honest-describe) hostile instead:
  silent            reads everything, never answers
  drop              closes the connection at the first audio chunk, or at a request without audio
  huge-length       a header announcing data_length 2**40
  bad-json          a header line that is not JSON
  overlong-payload  an event (of a type no call waits for) whose payload is far longer than its payload_length says
  drip              a valid answer, one byte a second
  stall             stops reading at `transcribe` or `detect` (the client's writes back up)
  flood             audio chunks without end (or transcript chunks, for ASR)
"""

import argparse
import asyncio
import io
import json
import subprocess
import sys
import wave
from functools import partial

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel, AsrProgram, Attribution, Describe, HandleModel, HandleProgram, Info, IntentModel, IntentProgram,
    TtsProgram, TtsVoice, WakeModel, WakeProgram,
)
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

ATTRIBUTION = Attribution(name="edge-gateway tests", url="https://example.invalid")

# phrase -> (intent name, entities, reply)
PHRASES = {
    "turn on the kitchen light": ("HassTurnOn", [Entity(name="name", value="kitchen light")], "Turned on the kitchen light"),
    "what time is it": ("HassGetCurrentTime", [], "It is noon"),
}
NOT_UNDERSTOOD = "Sorry, I couldn't understand that"


def info(args) -> Info:
    modes = {"asr", "intent", "handle", "tts", "wake"} if args.mode == "all" else {args.mode}
    result = Info()
    if "asr" in modes:
        result.asr = [AsrProgram(
            name="scripted-asr", attribution=ATTRIBUTION, installed=True, description="scripted transcripts",
            version="1.0", supports_transcript_streaming=args.stream,
            models=[AsrModel(name="scripted", attribution=ATTRIBUTION, installed=True, description=None,
                             version=None, languages=["en", "de"])],
        )]
    if "intent" in modes:
        result.intent = [IntentProgram(
            name="phrases", attribution=ATTRIBUTION, installed=True, description=None, version="1.0",
            models=[IntentModel(name="phrases", attribution=ATTRIBUTION, installed=True, description=None,
                                version=None, languages=["en"])],
        )]
    if "handle" in modes:
        result.handle = [HandleProgram(
            name="phrases", attribution=ATTRIBUTION, installed=True, description=None, version="1.0",
            models=[HandleModel(name="phrases", attribution=ATTRIBUTION, installed=True, description=None,
                                version=None, languages=["en"])],
        )]
    if "tts" in modes:
        result.tts = [TtsProgram(
            name="espeak-ng", attribution=ATTRIBUTION, installed=True, description=None, version="1.0",
            voices=[TtsVoice(name="en", attribution=ATTRIBUTION, installed=True, description=None, version=None,
                             languages=["en"]),
                    TtsVoice(name="de", attribution=ATTRIBUTION, installed=True, description=None, version=None,
                             languages=["de"])],
        )]
    if "wake" in modes:
        result.wake = [WakeProgram(
            name="scripted-wake", attribution=ATTRIBUTION, installed=True, description=None, version="1.0",
            models=[WakeModel(name="ok_nabu", attribution=ATTRIBUTION, installed=True, description=None,
                              version=None, languages=["en"], phrase="ok nabu")],
        )]
    return result


class Handler(AsyncEventHandler):
    def __init__(self, args, *rest) -> None:
        super().__init__(*rest)
        self.args = args
        self.audio_bytes = 0
        self.audio_ms = 0
        self.streaming = None  # "asr" or "wake" while audio streams
        self.answered = False
        self.detected = False
        self.wake_names = None
        self.format = None
        self.language = None

    # --- hostile answers -----------------------------------------------------------------------
    async def hostile(self, answer: Event) -> bool:
        kind = self.args.hostile
        writer = self.writer
        if kind == "silent":
            return True
        if kind == "drop":
            return False
        if kind == "huge-length":
            writer.write(json.dumps({"type": answer.type, "data_length": 2**40}).encode() + b"\n")
        elif kind == "bad-json":
            writer.write(b'{"type": "info", "data_length": \n')
        elif kind == "overlong-payload":
            # An event no call waits for, so the client reads on into the surplus.
            writer.write(json.dumps({"type": "x-overlong", "payload_length": 4}).encode() + b"\n")
            writer.write(b"x" * (1024 * 1024))
        elif kind == "drip":
            buffer = io.BytesIO()

            class Sink:
                def writelines(self, lines):
                    for line in lines:
                        buffer.write(line)

                def write(self, data):
                    buffer.write(data)

                async def drain(self):
                    pass

            await async_write_event(answer, Sink())
            for byte in buffer.getvalue():
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
            return True
        elif kind == "flood":
            if answer.type in ("transcript",):
                flood = TranscriptChunk(text="la ").event()
            else:
                flood = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3200)).event()
            while True:
                await async_write_event(flood, writer)
        await writer.drain()
        return True

    async def answer(self, *events: Event, close: bool = False) -> bool:
        """Writes the events (or the hostile kind's answer); False ends the connection, as the reference
        servers do after their final answer."""
        if self.args.hostile:
            return await self.hostile(events[-1])
        for event in events:
            await self.write_event(event)
        return not close

    # --- the protocol ----------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> bool:
        args = self.args
        if Describe.is_type(event.type):
            if args.honest_describe:
                await self.write_event(info(args).event())
                return True
            return await self.answer(info(args).event())

        if args.hostile == "stall" and (Transcribe.is_type(event.type) or Detect.is_type(event.type)):
            self.writer.transport.pause_reading()
            await asyncio.Event().wait()
        if Transcribe.is_type(event.type):
            self.streaming = "asr"
            self.language = Transcribe.from_event(event).language
            return True
        if Detect.is_type(event.type):
            self.streaming = "wake"
            self.wake_names = Detect.from_event(event).names
            return True
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self.format = f"{start.rate} {start.width} {start.channels}"
            return True
        if AudioChunk.is_type(event.type):
            if args.hostile == "drop":
                return False
            chunk = AudioChunk.from_event(event)
            if f"{chunk.rate} {chunk.width} {chunk.channels}" != self.format:
                self.format = "mixed"
            self.audio_bytes += len(chunk.audio)
            self.audio_ms += chunk.milliseconds
            if self.streaming == "asr" and args.answer_after_bytes and not self.answered \
                    and self.audio_bytes >= args.answer_after_bytes:
                self.answered = True
                return await self.transcript(close=True)
            if self.streaming == "wake" and not self.detected and self.audio_ms >= args.detect_after_ms:
                self.detected = True
                name = (self.wake_names or ["ok_nabu"])[0]
                return await self.answer(Detection(name=name, timestamp=self.audio_ms).event())
            return True
        if AudioStop.is_type(event.type):
            if self.streaming == "asr":
                if self.answered:
                    return False
                return await self.transcript(close=True)
            if self.streaming == "wake":
                if self.args.hostile:
                    return await self.answer(NotDetected().event())
                if not self.detected:
                    await self.write_event(NotDetected().event())
                return False
            return True

        if Recognize.is_type(event.type):
            text = Recognize.from_event(event).text
            known = PHRASES.get(text.strip().lower())
            if known is None:
                return await self.answer(NotRecognized(text=NOT_UNDERSTOOD).event(), close=True)
            name, entities, reply = known
            return await self.answer(Intent(name=name, entities=entities, text=reply).event(), close=True)

        if Transcript.is_type(event.type):
            text = Transcript.from_event(event).text
            known = PHRASES.get(text.strip().lower())
            if known is None:
                return await self.answer(NotHandled(text=NOT_UNDERSTOOD).event(), close=True)
            return await self.answer(Handled(text=known[2]).event(), close=True)

        if Synthesize.is_type(event.type):
            synthesize = Synthesize.from_event(event)
            voice = synthesize.voice.name if synthesize.voice and synthesize.voice.name else "en"
            if args.hostile:
                return await self.answer(AudioStart(rate=22050, width=2, channels=1).event())
            return await self.speak(synthesize.text, voice) and False

        return True

    async def transcript(self, close: bool = False) -> bool:
        text = self.args.transcript.replace("{bytes}", str(self.audio_bytes)).replace("{format}", str(self.format)) \
            .replace("{language}", str(self.language))
        events = []
        if self.args.stream:
            events.append(TranscriptStart(language="en").event())
            for word in text.split():
                events.append(TranscriptChunk(text=word + " ").event())
            events.append(TranscriptStop().event())
        events.append(Transcript(text=text, language="en").event())
        return await self.answer(*events, close=close)

    async def speak(self, text: str, voice: str) -> bool:
        process = await asyncio.create_subprocess_exec(
            "espeak-ng", "--stdout", "-v", voice, text, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        wav_bytes, _ = await process.communicate()
        with wave.open(io.BytesIO(wav_bytes), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            await self.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            while True:
                frames = wav.readframes(1024)
                if not frames:
                    break
                await self.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=frames).event())
        await self.write_event(AudioStop().event())
        return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["asr", "intent", "handle", "tts", "wake", "all"], default="all")
    parser.add_argument("--hostile", choices=["silent", "drop", "huge-length", "bad-json", "overlong-payload",
                                              "drip", "flood", "stall"])
    parser.add_argument("--transcript", default="turn on the kitchen light")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--honest-describe", action="store_true")
    parser.add_argument("--answer-after-bytes", type=int, default=0)
    parser.add_argument("--detect-after-ms", type=int, default=500)
    args = parser.parse_args()

    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{args.port}")
    await server.start(partial(Handler, args))
    print(f"READY {args.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
