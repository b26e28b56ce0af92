"""The georef Processing provider: align, batch, export GCPs, apply GCPs, benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingProvider,
)

from . import bridge
from .settings import configured_python


def _python() -> str:
    try:
        return bridge.find_python(configured_python())
    except bridge.CoreError as exc:
        raise QgsProcessingException(str(exc)) from None


def _choices() -> tuple[list[str], list[str]]:
    """The core's matchers and models; where no core is installed yet, only the defaults (it cannot run anyway)."""
    try:
        listing = bridge.core_listing(bridge.find_python(configured_python()))
    except bridge.CoreError:
        return ["xfeat"], ["auto"]
    return [m["name"] for m in listing["matchers"]], list(listing["models"])


def _run(args: list[str], feedback) -> None:
    _call(bridge.run_core, _python(), ["-q", *args], feedback.isCanceled, feedback.setProgress, feedback=feedback)


def _call(function, *args, feedback):
    """Call a bridge function, turning its failures into QgsProcessingException."""
    try:
        return function(*args)
    except bridge.Canceled:
        raise QgsProcessingException("canceled") from None
    except bridge.CoreError as exc:
        raise QgsProcessingException(str(exc)) from None
    except bridge.CoreCrash as exc:
        feedback.reportError(str(exc))
        raise QgsProcessingException("the georef core failed; see the log") from None


class _Algorithm(QgsProcessingAlgorithm):
    name_ = ""
    title = ""
    help = ""

    def name(self):
        return self.name_

    def displayName(self):  # noqa: N802
        return self.title

    def shortHelpString(self):  # noqa: N802
        return self.help

    def createInstance(self):  # noqa: N802
        return type(self)()


class AlignAlgorithm(_Algorithm):
    name_, title = "align", "Auto-georeference (align to a reference)"
    help = "Matches TARGET against REFERENCE, fits a robust transform and writes the aligned GeoTIFF and its GCPs."

    def initAlgorithm(self, config=None):  # noqa: N802
        self.matchers, self.models = _choices()
        self.addParameter(QgsProcessingParameterRasterLayer("TARGET", "Target (misregistered) raster"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Georeferenced reference raster"))
        self.addParameter(QgsProcessingParameterEnum("MATCHER", "Matcher", self.matchers, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum("MODEL", "Transform model", self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Aligned raster"))
        self.addParameter(QgsProcessingParameterVectorDestination("GCPS", "GCP layer", optional=True,
                                                                  createByDefault=False))
        advanced = [QgsProcessingParameterNumber("MAX_SHIFT", "Search margin around the target (m) [empty: 600, "
                                                 "widened up to 10000 where nothing convincing is found]",
                                                 QgsProcessingParameterNumber.Double, optional=True, minValue=0)]
        for key, whose in (("MASK_TARGET", "Target"), ("MASK_REF", "Reference")):
            advanced += [QgsProcessingParameterRasterLayer(key, f"{whose} mask: pixels kept out of matching (same "
                                                                "extent, any resolution)", optional=True),
                         QgsProcessingParameterString(f"{key}_VALUES", f"{whose} mask values, e.g. 3,8,9,10, or "
                                                      "flag bits, e.g. bits=1,3,4 [empty: every non-zero value]",
                                                      optional=True)]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addOutput(QgsProcessingOutputNumber("CE90_M", "Estimated error at the corners, CE90 (m)"))
        self.addOutput(QgsProcessingOutputNumber("RMSE_PX", "Tie-point residual RMSE (px)"))
        self.addOutput(QgsProcessingOutputNumber("INLIERS", "Inliers"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        target = self.parameterAsRasterLayer(parameters, "TARGET", context).source()
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context).source()
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        gcps = self.parameterAsOutputLayer(parameters, "GCPS", context) or None
        result = _call(bridge.align, _python(), target, reference, output,
                       self.matchers[self.parameterAsEnum(parameters, "MATCHER", context)],
                       self.models[self.parameterAsEnum(parameters, "MODEL", context)], gcps, feedback.isCanceled,
                       feedback.setProgress, feedback.setProgressText, self._options(parameters, context),
                       feedback=feedback)
        feedback.pushInfo(f"estimated error {result.report['estimated_ce90_m']} m (CE90), "
                          f"{result.report['inliers']} inliers")
        return {"OUTPUT": output, "GCPS": gcps, "CE90_M": result.report["estimated_ce90_m"],
                "RMSE_PX": result.report["tie_point_rmse_px"],
                "INLIERS": result.report["inliers"]}

    def _options(self, parameters, context) -> list[str]:
        """The core's options from the advanced parameters."""
        options = []
        if parameters.get("MAX_SHIFT") is not None:
            options += ["--max-shift", repr(self.parameterAsDouble(parameters, "MAX_SHIFT", context))]
        for key, flag, whose in (("MASK_TARGET", "--mask-target", "target"), ("MASK_REF", "--mask-ref", "reference")):
            mask = self.parameterAsRasterLayer(parameters, key, context)
            values = self.parameterAsString(parameters, f"{key}_VALUES", context).strip()
            if mask is not None:
                options += [flag, f"{mask.source()}:{values}" if values else mask.source()]
            elif values:
                raise QgsProcessingException(f"{whose} mask values are given, but no {whose} mask")
        return options


class IntoGroup(QgsProcessingLayerPostProcessorInterface):
    """Moves a result layer, once Processing has loaded it, into a group of the layer tree
    (QGIS 3.22's Processing has no group per output). One per layer: the context deletes them."""

    #: Python keeps them too, or sip may collect one before Processing calls it.
    alive: list["IntoGroup"] = []

    def __init__(self, group: str) -> None:
        super().__init__()
        self.group = group
        IntoGroup.alive.append(self)

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        root = context.project().layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        group = root.findGroup(self.group) or root.insertGroup(0, self.group)
        group.addLayer(layer)  # before the old node goes, so that the project keeps the layer
        node.parent().removeChildNode(node)


class BatchAlgorithm(_Algorithm):
    name_, title = "batch", "Auto-georeference many rasters (batch)"
    help = ("Aligns many targets against one reference, or the pairs of a CSV table (target,reference[,output]), "
            "with the core's batch command on a local Dask cluster; loads the aligned rasters and their "
            "footprints. Pairs that fail are listed with their reasons; the others are kept.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.matchers, self.models = _choices()
        self.addParameter(QgsProcessingParameterMultipleLayers("TARGETS", "Targets", QgsProcessing.TypeRaster,
                                                               optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference of every target", optional=True))
        self.addParameter(QgsProcessingParameterFile("TABLE", "Or a table of pairs (CSV or TSV)", optional=True,
                                                     extension="csv"))
        self.addParameter(QgsProcessingParameterEnum("MATCHER", "Matcher", self.matchers, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum("MODEL", "Transform model", self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Results folder"))
        self.addOutput(QgsProcessingOutputNumber("ALIGNED", "Pairs aligned"))
        self.addOutput(QgsProcessingOutputNumber("FAILED", "Pairs not aligned"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        out = Path(self.parameterAsString(parameters, "OUTPUT", context))
        out.mkdir(parents=True, exist_ok=True)
        table = self.parameterAsFile(parameters, "TABLE", context)
        targets = [layer.source() for layer in self.parameterAsLayerList(parameters, "TARGETS", context)]
        reference = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        if table:
            args = ["batch", table]
        elif targets and reference is not None:
            listing = out / "targets.txt"
            listing.write_text("".join(f"{t}\n" for t in targets))
            args = ["batch", "--targets", str(listing), "--ref", reference.source()]
        else:
            raise QgsProcessingException("give the targets and their reference, or a table of pairs")
        args += ["--out", str(out), "--overwrite", "--progress-json",
                 "--matcher", self.matchers[self.parameterAsEnum(parameters, "MATCHER", context)],
                 "--model", self.models[self.parameterAsEnum(parameters, "MODEL", context)]]
        try:
            _call(bridge.run_core, _python(), ["-q", *args], feedback.isCanceled, feedback.setProgress,
                  feedback.setProgressText, feedback=feedback)
        except QgsProcessingException:
            if not (out / "results.csv").is_file():  # the list of pairs itself was refused
                raise
        with open(out / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        aligned = [r for r in rows if r["status"] == "aligned"]
        group = f"georef batch: {out.name}"
        for row in rows:
            if row["status"] != "aligned":
                feedback.reportError(f"{row['target']}: {row['status']}: {row['reason']}")
        for row in aligned:
            details = QgsProcessingContext.LayerDetails(Path(row["target"].split(",")[0]).stem + " (aligned)",
                                                        context.project(), "ALIGNED")
            details.setPostProcessor(IntoGroup(group))
            context.addLayerToLoadOnCompletion(row["output"], details)
        if (out / "footprints.gpkg").is_file():
            details = QgsProcessingContext.LayerDetails("georef footprints", context.project(), "FOOTPRINTS")
            details.setPostProcessor(IntoGroup(group))
            context.addLayerToLoadOnCompletion(f"{out / 'footprints.gpkg'}|layername=after", details)
        feedback.pushInfo(f"{len(aligned)} of {len(rows)} pairs aligned; results in {out / 'results.csv'}")
        return {"OUTPUT": str(out), "ALIGNED": len(aligned), "FAILED": len(rows) - len(aligned)}


class ExportGcpsAlgorithm(_Algorithm):
    name_, title = "exportgcps", "Export GCPs with residuals"
    help = "Writes the tie points of a georef report (JSON) or a GeoTIFF with GCPs as a point layer or .points file."

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("SOURCE", "georef report (.json) or GeoTIFF with GCPs"))
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "GCP layer"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        _run(["gcps", self.parameterAsFile(parameters, "SOURCE", context), "--to", output, "--overwrite"], feedback)
        return {"OUTPUT": output}


class ApplyGcpsAlgorithm(_Algorithm):
    name_, title = "applygcps", "Apply (edited) GCPs"
    help = "Fits a model to the enabled GCPs of a GCP file (.points, .gpkg, .csv, ...) and writes the target with it."

    def initAlgorithm(self, config=None):  # noqa: N802
        self.models = _choices()[1]
        self.addParameter(QgsProcessingParameterFile("GCPS", "GCP file"))
        self.addParameter(QgsProcessingParameterRasterLayer("TARGET", "Target raster"))
        self.addParameter(QgsProcessingParameterEnum("MODEL", "Transform model", self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Output raster"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        _run(["fit", self.parameterAsFile(parameters, "GCPS", context),
              self.parameterAsRasterLayer(parameters, "TARGET", context).source(), "-o", output,
              "--model", self.models[self.parameterAsEnum(parameters, "MODEL", context)], "--overwrite"], feedback)
        return {"OUTPUT": output}


class BenchmarkAlgorithm(_Algorithm):
    name_, title = "benchmark", "Benchmark matchers on known misregistrations"
    help = "Runs georef benchmark on an s2-seasons folder or a pairs CSV and writes its report folder."

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("PAIRS", "s2-seasons folder",
                                                     behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterString("MATCHERS", "Matchers (comma-separated)", "xfeat"))
        self.addParameter(QgsProcessingParameterString("LIMIT", "Use only the first N pairs (empty: all)", "",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Report folder"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        output = self.parameterAsString(parameters, "OUTPUT", context)
        args = ["benchmark", self.parameterAsFile(parameters, "PAIRS", context), "--out", output,
                "--matchers", self.parameterAsString(parameters, "MATCHERS", context)]
        limit = self.parameterAsString(parameters, "LIMIT", context)
        if limit:
            args += ["--limit", limit]
        _run(args, feedback)
        return {"OUTPUT": output}


class GeorefProvider(QgsProcessingProvider):
    def id(self):
        return "georef"

    def name(self):
        return "georef"

    def loadAlgorithms(self):  # noqa: N802
        for algorithm in (AlignAlgorithm, BatchAlgorithm, ExportGcpsAlgorithm, ApplyGcpsAlgorithm, BenchmarkAlgorithm):
            self.addAlgorithm(algorithm())
